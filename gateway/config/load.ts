/** Config: parse YAML (or take an object), validate once with messages that name the field, resolve paths, freeze. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

export class ConfigError extends Error {
  readonly code = 'SY_CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function formatIssues(issues: z.core.$ZodIssue[], source: string): string {
  const lines = issues.map((issue) => {
    const where = issue.path.length ? issue.path.join('.') : '(top level)';
    if (issue.code === 'unrecognized_keys') {
      return `  ${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    }
    return `  ${where}: ${issue.message}`;
  });
  return `invalid config ${source}:\n${lines.join('\n')}`;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Validates a plain object; relative paths resolve against `baseDir`. */
export function validateConfig(raw: unknown, options: { baseDir?: string; source?: string } = {}): Readonly<Config> {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(formatIssues(result.error.issues, options.source ?? ''));
  const config = result.data;
  const baseDir = options.baseDir ?? process.cwd();
  for (const endpoint of Object.values(config.endpoints)) {
    if (endpoint.predictor) endpoint.predictor = path.resolve(baseDir, endpoint.predictor);
    if (endpoint.model) endpoint.model = path.resolve(baseDir, endpoint.model);
    if (endpoint.output_dir) endpoint.output_dir = path.resolve(baseDir, endpoint.output_dir);
  }
  const cluster = config.cluster;
  if (cluster) {
    if (cluster.nkey_seed_file) cluster.nkey_seed_file = path.resolve(baseDir, cluster.nkey_seed_file);
    if (cluster.creds_file) cluster.creds_file = path.resolve(baseDir, cluster.creds_file);
    const tls = cluster.tls;
    if (tls?.ca_file) tls.ca_file = path.resolve(baseDir, tls.ca_file);
    if (tls?.cert_file) tls.cert_file = path.resolve(baseDir, tls.cert_file);
    if (tls?.key_file) tls.key_file = path.resolve(baseDir, tls.key_file);
  }
  return deepFreeze(config);
}

export function loadConfigFile(file: string): Readonly<Config> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config ${file} is not valid YAML: ${(err as Error).message}`);
  }
  return validateConfig(raw, { baseDir: path.dirname(path.resolve(file)), source: file });
}
