/**
 * The node agent's options: one schema with every default and every rule, whether they come from
 * `switchyard node` flags or from `startNodeAgent()`. Messages name the option as the command
 * line spells it, since that is where most of them come from.
 */
import os from 'node:os';
import { z } from 'zod';
import { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_SUBJECT_PREFIX, isSubjectPrefix, isSubjectToken } from '../cluster/subjects.js';
import { DEFAULT_POLL_US } from '../pool/polling.js';

/** Longest wait for in-flight requests when a node drains. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

function defaultName(): string {
  return os.hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64) || 'node';
}

const file = z.string().min(1);
const positiveInt = z.number().int().positive();

export const nodeAgentOptionsSchema = z
  .object({
    /** NATS server URL(s), comma-separated. */
    nats: z.string().min(1, '--nats is required (e.g. nats://host:4222)'),
    region: z.string().min(1, '--region is required'),
    /** `auto`, or a comma list of cpu, cuda:N, coreml (checked against this machine's devices). */
    devices: z.string().default('auto'),
    /** Default: the host name, made subject-safe. */
    name: z
      .string()
      .refine(isSubjectToken, '--name must be 1-64 letters, digits, "_" or "-"')
      .default(defaultName),
    prefix: z.string().refine(isSubjectPrefix, '--prefix must be dot-separated tokens of letters, digits, "_" or "-"').default(DEFAULT_SUBJECT_PREFIX),
    /** The artifact cache lives here (default `.switchyard/node-<name>`); replicas write their files in the default output folder (memory-backed where the machine has one). */
    workDir: z.string().min(1).optional(),
    /** Replicas hosted at once (default: CPU cores). */
    maxReplicas: positiveInt.optional(),
    /**
     * µs a replica thread polls for its next request before it sleeps, while the machine has a core
     * to spare (0: never), as `server.poll_us` sets it for a gateway's own replicas.
     */
    pollUs: z.number().int('--poll-us must be a whole number of µs').min(0, '--poll-us must be 0 or more').max(10_000, '--poll-us must be at most 10000').default(DEFAULT_POLL_US),
    heartbeatIntervalMs: positiveInt.default(DEFAULT_HEARTBEAT_INTERVAL_MS),
    drainTimeoutMs: z.number().int().nonnegative().default(DEFAULT_DRAIN_TIMEOUT_MS),
    token: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    nkeySeedFile: file.optional(),
    credsFile: file.optional(),
    tls: z.object({ caFile: file.optional(), certFile: file.optional(), keyFile: file.optional() }).strict().optional(),
    log: z.custom<(message: string, fields?: Record<string, unknown>) => void>((v) => typeof v === 'function').optional(),
  })
  .strict()
  .refine((o) => [o.token, o.user, o.nkeySeedFile, o.credsFile].filter((v) => v !== undefined).length <= 1, {
    message: 'give one NATS credential: --token, --user/--password, --nkey-seed or --creds',
    path: ['token'],
  })
  .refine((o) => (o.user === undefined) === (o.password === undefined), { message: '--user and --password go together', path: ['password'] });

/** What a caller passes: defaults may be left out; a key present with `undefined` counts as absent. */
export type NodeAgentOptions = z.input<typeof nodeAgentOptionsSchema>;
/** The options with every default filled in. */
export type NodeAgentSettings = z.output<typeof nodeAgentOptionsSchema>;

/** Thrown for options the schema refuses; the message names each option and what is wrong. */
export class NodeOptionsError extends Error {
  readonly code = 'SY_NODE_OPTIONS';
  constructor(message: string) {
    super(message);
    this.name = 'NodeOptionsError';
  }
}

export function parseNodeAgentOptions(raw: NodeAgentOptions): NodeAgentSettings {
  // Flags a user did not give arrive as undefined: the default applies, as for a missing key.
  const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
  const result = nodeAgentOptionsSchema.safeParse(given);
  if (!result.success) throw new NodeOptionsError(result.error.issues.map((i) => (i.code === 'unrecognized_keys' ? `unknown option ${i.keys.join(', ')}` : i.message)).join('; '));
  return result.data;
}
