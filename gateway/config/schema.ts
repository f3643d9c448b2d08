/**
 * The one config schema: every field, its default and its bounds live here. `loadConfigFile` parses
 * YAML and `validateConfig` checks a plain object against this (config/load.ts) and freezes the result. Unknown fields are errors (`strict`).
 * Names follow TensorOpera Deploy where it has them (min_replicas, max_replicas,
 * window_size_secs, scaledown_delay_secs).
 */
import { z } from 'zod';
import { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_SUBJECT_PREFIX } from '../../workers/cluster/subjects.js';
import { DEVICE_PATTERN } from '../../native/devices.js';
import { DEFAULT_POLL_US } from '../../workers/pool/polling.js';

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const seconds = z.number().nonnegative();

const device = z.string().regex(DEVICE_PATTERN, 'must be "cpu", "cuda:N" or "coreml"');

export const autoscalingSchema = z
  .object({
    /** Replicas never go below this; 0 allows scale to zero (requests wait while one starts). */
    min_replicas: nonNegativeInt.default(1),
    max_replicas: positiveInt.default(1),
    /** In-flight + queued requests per replica above which the endpoint scales up. */
    target_concurrency_per_replica: z.number().positive().default(4),
    /** Seconds over which concurrency (and QPS) is averaged for a decision. */
    window_size_secs: z.number().positive().default(3),
    /** How long a lower desired count must hold before replicas are drained. */
    scaledown_delay_secs: seconds.default(30),
    /** How long a higher desired count must hold before replicas are added (0: at once). */
    upscale_delay_secs: seconds.default(0),
    /** Short-window concurrency ≥ panic_threshold × target scales up at once and blocks scale-down. */
    panic_threshold: z.number().min(1).default(2),
    panic_window_secs: z.number().positive().default(0.5),
    /** Optional alternative metric: requests per second one replica should serve. */
    target_qps_per_replica: z.number().positive().optional(),
    /** Milliseconds between controller ticks. */
    tick_ms: positiveInt.default(200),
  })
  .strict()
  .refine((a) => a.max_replicas >= a.min_replicas, { message: 'max_replicas must be ≥ min_replicas', path: ['max_replicas'] });

/**
 * CORS for browser apps on other origins (docs: README "Clients"). Off unless given; on
 * `server` it covers every route, on an endpoint it replaces the server's for that endpoint's
 * routes (`/inference/{e}`, `/v2/models/{e}/...`). WebSocket upgrades check `Origin` against the
 * same list.
 */
export const corsSchema = z
  .object({
    /** Origins allowed to call, exactly as browsers send them (`https://app.example:8443`), or `"*"` for any. */
    allow_origins: z.array(z.string().regex(/^(\*|https?:\/\/[^/\s]+)$/, 'must be "*" or an origin like https://app.example')).min(1),
    /** Request headers allowed besides the built-in ones (Authorization, Content-Type, X-Request-Timeout-Ms, ...). */
    allow_headers: z.array(z.string().regex(/^[A-Za-z0-9-]+$/, 'must be a header name')).default([]),
    /** How long a browser may cache a preflight answer. */
    max_age_secs: nonNegativeInt.default(600),
    /** Let browsers send cookies and HTTP auth (`credentials: "include"`); not with `"*"`. */
    allow_credentials: z.boolean().default(false),
  })
  .strict()
  .refine((c) => !(c.allow_credentials && c.allow_origins.includes('*')), {
    message: 'allow_credentials needs explicit origins, not "*"',
    path: ['allow_credentials'],
  });

/** Limits on a stream's timing, each ending the stream with its own error code (docs/streaming.md). */
export const streamTimeoutsSchema = z
  .object({
    /** From the request's arrival to the stream's first chunk (default: the endpoint's timeout_ms). */
    first_chunk_ms: positiveInt.optional(),
    /** Longest gap between two chunks (default: none). */
    idle_ms: positiveInt.optional(),
    /** From the request's arrival to the stream's end (default: none). */
    total_ms: positiveInt.optional(),
  })
  .strict();

/** OpenAI-compatible routes for a text endpoint (`/v1/chat/completions`, `/v1/completions`, `/v1/models`). */
export const openaiSchema = z
  .object({
    /** The model name clients put in `"model"`; unique across endpoints. */
    model: z.string().min(1),
  })
  .strict();

export const endpointSchema = z
  .object({
    /** A predictor module (TypeScript or JavaScript) whose default export has setup/predict. */
    predictor: z.string().min(1).optional(),
    /** An ONNX file served by the built-in ONNX predictor. */
    model: z.string().min(1).optional(),
    /** Devices in order of preference; replicas go to the first with room. */
    devices: z.array(device).min(1).default(['cpu']),
    /** Replicas at start (and the fixed count when autoscaling is absent). */
    replicas: nonNegativeInt.default(1),
    /** Requests one replica works on at once; more wait in the endpoint queue. */
    max_concurrency: positiveInt.default(32),
    /** Requests that may wait for a replica; beyond that the endpoint answers 503 + Retry-After. */
    max_queue: nonNegativeInt.default(1024),
    /** Default deadline for a request; a client may ask for less with `X-Request-Timeout-Ms`. */
    timeout_ms: positiveInt.default(30_000),
    /**
     * How long a replica may take to confirm it stopped a request that passed its deadline. One that
     * does not (a predictor stuck in synchronous code) is wedged: it takes no new work, its thread
     * is terminated and replaced, and its other requests are retried elsewhere (idempotent endpoints).
     */
    abort_grace_ms: positiveInt.default(1_000),
    /** Body size limit for this endpoint (defaults to server.max_body_bytes). */
    max_body_bytes: positiveInt.optional(),
    /** Largest unary answer this endpoint sends (defaults to server.max_response_bytes); above it: 500 SY_RESPONSE_TOO_LARGE. */
    max_response_bytes: positiveInt.optional(),
    /** The endpoint takes no input: an empty body is read as `{}`. Otherwise an empty body is 400. */
    allow_empty_body: z.boolean().default(false),
    /** Bearer keys accepted for this endpoint; empty means open. */
    api_keys: z.array(z.string().min(8, 'api keys must be at least 8 characters')).default([]),
    /** Media types the predictor can write as files when a client sends that `Accept`. */
    produces: z.array(z.string().regex(/^[\w.+-]+\/[\w.+-]+$/, 'must be a media type like image/png')).default([]),
    /** Folder the predictor writes files into; only paths inside it are served. Default: <root>/switchyard/<endpoint>-<pid>, the root memory-backed where the machine has one (/dev/shm, $XDG_RUNTIME_DIR; else the OS tmp dir: workers/pool/output-folder.ts). */
    output_dir: z.string().optional(),
    /** Keep output files after they are sent (default: delete them). */
    keep_files: z.boolean().default(false),
    /** Unary requests may be retried on another replica when theirs dies (set false for non-idempotent work). */
    idempotent: z.boolean().default(true),
    /** Free-form settings handed to the predictor's setup(ctx). */
    settings: z.record(z.string(), z.unknown()).default({}),
    autoscaling: autoscalingSchema.optional(),
    /** Regions whose replicas this endpoint prefers, in order (empty: the gateway's own region). */
    regions: z.array(z.string().min(1)).default([]),
    /**
     * Where replicas may run: `any` (this gateway's devices and, with a cluster, the nodes'),
     * `local` (only this gateway's) or `remote` (only node agents; needs a cluster).
     */
    placement: z.enum(['any', 'local', 'remote']).default('any'),
    /** CORS for this endpoint's routes, replacing `server.cors` there. */
    cors: corsSchema.optional(),
    /** Time limits on streams (to the first chunk, between chunks, in total). */
    stream_timeouts: streamTimeoutsSchema.default({}),
    /** Serve this endpoint on the OpenAI-compatible routes under this model name (docs/clients.md). */
    openai: openaiSchema.optional(),
    /** Client reconnection to streams (docs/streaming.md); off while grace_ms is 0. */
    stream_reconnect: z
      .object({
        /** How long a stream waits for its client to come back after its connection went away (0: cancel at once). */
        grace_ms: nonNegativeInt.default(0),
        /** Bytes of a stream's most recent chunks kept for a replay, per stream. */
        tail_bytes: positiveInt.default(1024 * 1024),
      })
      .strict()
      .default({ grace_ms: 0, tail_bytes: 1024 * 1024 }),
  })
  .strict()
  .refine((e) => (e.predictor === undefined) !== (e.model === undefined), {
    message: 'exactly one of "predictor" or "model" must be given',
    path: ['predictor'],
  });

export const serverSchema = z
  .object({
    host: z.string().default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(8080),
    max_body_bytes: positiveInt.default(16 * 1024 * 1024),
    /** Largest unary answer (a result, or a file sent whole over a WebSocket); above it: 500 SY_RESPONSE_TOO_LARGE. */
    max_response_bytes: positiveInt.default(128 * 1024 * 1024),
    /** Requests one WebSocket may have open (running, or held until its client reads); more are refused with SY_CONNECTION_BUSY. */
    ws_max_in_flight: positiveInt.default(64),
    /**
     * Reply bytes the gateway holds for one WebSocket: its unread replies plus the expected answers of
     * its running unary requests. A request that would pass it waits in the gateway until the client
     * reads; stream replay tails past it refuse new requests (SY_CONNECTION_BUSY).
     */
    ws_max_buffered_bytes: positiveInt.default(8 * 1024 * 1024),
    /** A response (HTTP or WebSocket) whose client reads nothing for this long is cancelled and its connection closed. */
    stall_timeout_ms: positiveInt.default(30_000),
    /**
     * The longest a replica thread polls for its next request, and the gateway for a lone request's
     * answer, instead of sleeping (µs; 0: never). Only with a core to spare (docs/replicas.md).
     */
    poll_us: nonNegativeInt.max(10_000).default(DEFAULT_POLL_US),
    /** Upper bound on waiting for in-flight requests at SIGTERM. */
    shutdown_grace_ms: nonNegativeInt.default(10_000),
    /** Serve even if uWebSockets.js fell back to its slow pure-JS server. */
    allow_js_fallback: z.boolean().default(false),
    /** The region this gateway stands in (routing prefers it). */
    region: z.string().min(1).default('local'),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** CORS for every route (off when absent). */
    cors: corsSchema.optional(),
  })
  .strict();

export const clusterSchema = z
  .object({
    /** NATS server URL(s), comma-separated, e.g. `nats://nats.internal:4222`. */
    nats: z.string().min(1),
    /** Every cluster subject lives under this prefix; gateways and nodes must agree on it. */
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$/, 'must be dot-separated tokens of letters, digits, "_" or "-"')
      .default(DEFAULT_SUBJECT_PREFIX),
    token: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** A file holding an nkey user seed. */
    nkey_seed_file: z.string().min(1).optional(),
    /** A NATS `.creds` file. */
    creds_file: z.string().min(1).optional(),
    /** Present: TLS is required; the files verify the server and/or identify this client. */
    tls: z
      .object({ ca_file: z.string().min(1).optional(), cert_file: z.string().min(1).optional(), key_file: z.string().min(1).optional() })
      .strict()
      .optional(),
    /**
     * Present: this gateway is one of a federation (docs/cluster.md "Federation"): the deployment
     * lives in JetStream, every gateway routes to one shared replica set per endpoint, and a leader
     * per endpoint (a KV lease) places and scales. Endpoints in this config, if any, are deployed.
     */
    federation: z
      .object({
        /**
         * A leader silent this long loses the endpoint to another gateway (it renews every third
         * of it). Failover takes up to this plus two 250 ms reads (about 1.7 s by default); shorter
         * leases fail over sooner, but a leader whose process stalls that long loses its lease.
         */
        lease_ms: z.number().int().min(300).default(1200),
      })
      .strict()
      .optional(),
    /** How often nodes are expected to heartbeat. */
    heartbeat_interval_ms: positiveInt.default(DEFAULT_HEARTBEAT_INTERVAL_MS),
    /** A node that missed this many heartbeats is suspect: no new work goes to it. */
    suspect_after_missed: positiveInt.default(3),
    /** A node silent this long is dead: its replicas are lost and re-placed. */
    dead_after_ms: positiveInt.default(1_000),
    /**
     * With more than one NATS server known, a lost connection is a failover: requests for node
     * agents wait this long for the reconnection (within their deadline), and those in flight are
     * sent again once it is back. Still down after it, the cluster counts as unreachable (503).
     */
    failover_grace_ms: positiveInt.default(3_000),
  })
  .strict()
  .refine((c) => [c.token, c.user, c.nkey_seed_file, c.creds_file].filter((v) => v !== undefined).length <= 1, {
    message: 'give one NATS credential: token, user/password, nkey_seed_file or creds_file',
    path: ['token'],
  })
  .refine((c) => (c.user === undefined) === (c.password === undefined), { message: 'user and password go together', path: ['password'] })
  .refine((c) => c.dead_after_ms > c.heartbeat_interval_ms * c.suspect_after_missed, {
    message: 'dead_after_ms must be longer than heartbeat_interval_ms × suspect_after_missed',
    path: ['dead_after_ms'],
  });

export const configSchema = z
  .object({
    server: serverSchema.default(serverSchema.parse({})),
    /** Join node agents over NATS; absent, everything runs in this process. */
    cluster: clusterSchema.optional(),
    endpoints: z.record(z.string().regex(/^[A-Za-z0-9][\w.-]*$/, 'endpoint names are letters, digits, "_", "-" and "."'), endpointSchema),
  })
  .strict()
  .superRefine((c, issues) => {
    const owners = new Map<string, string>();
    for (const [name, e] of Object.entries(c.endpoints)) {
      if (!e.openai) continue;
      const other = owners.get(e.openai.model);
      if (other !== undefined) issues.addIssue({ code: 'custom', path: ['endpoints', name, 'openai', 'model'], message: `"${e.openai.model}" is already the model name of endpoint "${other}"` });
      owners.set(e.openai.model, name);
    }
  });

export type Config = z.infer<typeof configSchema>;
/** A config as written (YAML or code): fields with defaults may be left out. */
export type ConfigInput = z.input<typeof configSchema>;
export type EndpointConfig = z.infer<typeof endpointSchema>;
export type AutoscalingConfig = z.infer<typeof autoscalingSchema>;
export type ServerConfig = z.infer<typeof serverSchema>;
export type CorsConfig = z.infer<typeof corsSchema>;
export type StreamTimeoutsConfig = z.infer<typeof streamTimeoutsSchema>;
export type ClusterConfig = z.infer<typeof clusterSchema>;
