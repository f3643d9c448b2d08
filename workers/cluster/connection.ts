/**
 * One NATS connection for a gateway or a node agent: credentials (token, user/password, nkey seed,
 * creds file), TLS, reconnecting forever with jitter once connected, a typed status feed, and
 * messages of any size.
 *
 * The first connect fails fast with a coded error (a node started with a bad credential should say
 * so and exit, not retry silently); after that, outages are ridden out. NATS refuses messages over
 * the server's `max_payload` (1 MiB by default) while request bodies and results may be larger, so
 * `publish` splits such a message into fragments with a `Sy-Fragment: i/n` header and
 * `FragmentAssembler` joins them. Each subject that carries fragments has one publisher, and NATS
 * keeps one publisher's messages in order, so fragments arrive consecutively.
 */
import { readFileSync } from 'node:fs';
import {
  AuthorizationError,
  connect,
  credsAuthenticator,
  headers,
  nkeyAuthenticator,
  nkeys,
  UserAuthenticationExpiredError,
  type Msg,
  type NatsConnection,
  type NodeConnectionOptions,
} from '@nats-io/transport-node';
import { clusterSubjects, type ClusterSubjects } from './subjects.js';

export type ClusterConnectErrorCode = 'SY_NATS_AUTH' | 'SY_NATS_UNREACHABLE' | 'SY_NATS_OPTIONS';

/** Raised at startup; like ConfigError it never reaches a client, so it is not an HTTP error code. */
export class ClusterConnectError extends Error {
  constructor(
    readonly code: ClusterConnectErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ClusterConnectError';
  }
}

export interface ClusterTlsOptions {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

export interface ClusterAuthOptions {
  token?: string | undefined;
  user?: string | undefined;
  password?: string | undefined;
  /** A file holding an nkey user seed (`SU...`). */
  nkeySeedFile?: string | undefined;
  /** A `.creds` file (JWT + seed) for decentralised auth. */
  credsFile?: string | undefined;
  /** Require TLS; files verify the server and/or present a client certificate. */
  tls?: ClusterTlsOptions | undefined;
}

export interface ClusterConnectOptions extends ClusterAuthOptions {
  /** `nats://host:4222`, several comma-separated, or a list; tried in this order (list the nearest first). */
  servers: string | string[];
  prefix?: string | undefined;
  /** Shown in the server's monitoring pages. */
  name?: string | undefined;
  /** How long the first connect may take. */
  connectTimeoutMs?: number;
  /** Base wait between reconnect attempts; jitter of up to the same again is added. */
  reconnectWaitMs?: number;
}

export type ConnectionStatus =
  | { type: 'disconnected'; server: string }
  | { type: 'reconnected'; server: string }
  /** An asynchronous error from the server (e.g. permissions, credentials revoked). */
  | { type: 'error'; error: Error }
  /** The connection is gone for good (closed here, or the server kept refusing credentials). */
  | { type: 'closed'; error?: Error };

export type ConnectionState = 'connected' | 'disconnected' | 'closed';

const FRAGMENT_HEADER = 'Sy-Fragment';
/** Room left in each fragment for the header block. */
const FRAGMENT_HEADROOM = 1024;
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

function buildAuth(opts: ClusterAuthOptions): Partial<NodeConnectionOptions> {
  const methods = [opts.token !== undefined, opts.user !== undefined || opts.password !== undefined, !!opts.nkeySeedFile, !!opts.credsFile];
  if (methods.filter(Boolean).length > 1) {
    throw new ClusterConnectError('SY_NATS_OPTIONS', 'give one NATS credential: a token, a user and password, an nkey seed or a creds file');
  }
  if ((opts.user === undefined) !== (opts.password === undefined)) {
    throw new ClusterConnectError('SY_NATS_OPTIONS', 'a NATS user needs a password and a password needs a user');
  }
  const read = (file: string, what: string): Uint8Array => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ClusterConnectError('SY_NATS_OPTIONS', `cannot read the ${what} ${file}: ${(err as Error).message}`);
    }
  };
  const auth: Partial<NodeConnectionOptions> = {};
  if (opts.token !== undefined) auth.token = opts.token;
  if (opts.user !== undefined) Object.assign(auth, { user: opts.user, pass: opts.password });
  if (opts.nkeySeedFile) {
    const seed = new TextEncoder().encode(new TextDecoder().decode(read(opts.nkeySeedFile, 'nkey seed file')).trim());
    try {
      nkeys.fromSeed(seed);
    } catch (err) {
      throw new ClusterConnectError('SY_NATS_OPTIONS', `${opts.nkeySeedFile} does not hold an nkey seed: ${(err as Error).message}`);
    }
    auth.authenticator = nkeyAuthenticator(seed);
  }
  if (opts.credsFile) auth.authenticator = credsAuthenticator(read(opts.credsFile, 'creds file'));
  if (opts.tls) {
    for (const [what, file] of Object.entries(opts.tls)) if (file) read(file, `TLS ${what}`);
    // The NATS client reads a present-but-undefined file option as a file to load.
    auth.tls = Object.fromEntries(Object.entries(opts.tls).filter(([, file]) => file !== undefined));
  }
  return auth;
}

function isAuthFailure(err: unknown): boolean {
  return err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError;
}

export class ClusterConnection {
  private stateNow: ConnectionState = 'connected';
  private readonly listeners = new Set<(status: ConnectionStatus) => void>();

  private constructor(
    readonly nc: NatsConnection,
    readonly subjects: ClusterSubjects,
    /** The servers this connection was given. */
    private readonly configured: readonly string[],
  ) {
    void this.watch();
  }

  /**
   * Whether another server is known to move to when the current one dies: several were given,
   * or the server advertised the other members of its cluster. A lost connection is then a
   * failover that takes a moment, not an outage.
   */
  get canFailOver(): boolean {
    const known = new Set<string>();
    for (const url of [...this.configured, ...(this.nc.info?.connect_urls ?? [])]) known.add(url.replace(/^[a-z]+:\/\//i, '').toLowerCase());
    return known.size > 1;
  }

  static async connect(opts: ClusterConnectOptions): Promise<ClusterConnection> {
    const subjects = clusterSubjects(opts.prefix);
    const servers = (Array.isArray(opts.servers) ? opts.servers : opts.servers.split(','))
      .map((s) => s.trim())
      .filter(Boolean);
    if (servers.length === 0) throw new ClusterConnectError('SY_NATS_OPTIONS', 'no NATS server given (e.g. --nats nats://host:4222)');
    const wait = opts.reconnectWaitMs ?? 500;
    const natsOptions: NodeConnectionOptions = {
      servers,
      // In the order given: in a geo-distributed cluster the nearest server comes first.
      noRandomize: true,
      ...(opts.name === undefined ? {} : { name: opts.name }),
      timeout: opts.connectTimeoutMs ?? 5_000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: wait,
      reconnectJitter: wait,
      reconnectJitterTLS: wait,
      // Replies to our requests stay under the prefix, so a node only ever publishes there.
      inboxPrefix: subjects.inboxPrefix,
      ...buildAuth(opts),
    };
    let nc: NatsConnection;
    try {
      nc = await connect(natsOptions);
    } catch (err) {
      const where = servers.join(', ');
      if (isAuthFailure(err)) {
        throw new ClusterConnectError('SY_NATS_AUTH', `NATS at ${where} refused the credentials: ${(err as Error).message}`, { cause: err });
      }
      const cause = (err as Error).cause instanceof Error ? `: ${((err as Error).cause as Error).message}` : '';
      throw new ClusterConnectError('SY_NATS_UNREACHABLE', `cannot connect to NATS at ${where}: ${(err as Error).message}${cause}`, { cause: err });
    }
    return new ClusterConnection(nc, subjects, servers);
  }

  get state(): ConnectionState {
    return this.stateNow;
  }

  /** The largest message the server takes in one piece. */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  onStatus(listener: (status: ConnectionStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Publishes `data` whole, or in fragments when it exceeds the server's limit. Returns false when
   * the connection is closed (while disconnected, NATS buffers until it is back).
   */
  publish(subject: string, data: Uint8Array): boolean {
    if (this.stateNow === 'closed' || this.nc.isClosed() || this.nc.isDraining()) return false;
    const piece = Math.max(1024, this.maxPayload - FRAGMENT_HEADROOM);
    try {
      if (data.byteLength <= piece) {
        this.nc.publish(subject, data);
        return true;
      }
      const count = Math.ceil(data.byteLength / piece);
      for (let i = 0; i < count; i++) {
        const h = headers();
        h.set(FRAGMENT_HEADER, `${i}/${count}`);
        this.nc.publish(subject, data.subarray(i * piece, Math.min(data.byteLength, (i + 1) * piece)), { headers: h });
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Flushes what was published and closes (at once while disconnected: there is nowhere to flush to). */
  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    if (this.stateNow !== 'connected') {
      await this.nc.close();
      return;
    }
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close();
    }
  }

  private emit(status: ConnectionStatus): void {
    for (const listener of [...this.listeners]) listener(status);
  }

  private async watch(): Promise<void> {
    void this.nc.closed().then((err) => {
      this.stateNow = 'closed';
      this.emit(err instanceof Error ? { type: 'closed', error: err } : { type: 'closed' });
    });
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect') {
        this.stateNow = 'disconnected';
        this.emit({ type: 'disconnected', server: s.server });
      } else if (s.type === 'reconnect') {
        this.stateNow = 'connected';
        this.emit({ type: 'reconnected', server: s.server });
      } else if (s.type === 'error') {
        this.emit({ type: 'error', error: s.error });
      }
    }
  }
}

/** Joins fragmented messages (see `ClusterConnection.publish`), per subject. */
export class FragmentAssembler {
  private readonly pending = new Map<string, { parts: Uint8Array[]; count: number; bytes: number }>();

  /** @param maxBytes largest whole message accepted; bigger ones are dropped, not buffered. */
  constructor(private readonly maxBytes = 512 * 1024 * 1024) {}

  /** The whole message once its last fragment arrived (or at once when it was not split), else undefined. */
  accept(msg: Msg): Uint8Array | undefined {
    const mark = msg.headers?.get(FRAGMENT_HEADER);
    if (!mark) return msg.data;
    const match = /^(\d+)\/(\d+)$/.exec(mark);
    if (!match) return undefined;
    const index = Number(match[1]);
    const count = Number(match[2]);
    let entry = this.pending.get(msg.subject);
    if (index === 0) {
      entry = { parts: [], count, bytes: 0 };
      this.pending.set(msg.subject, entry);
    }
    if (!entry || entry.parts.length !== index || entry.count !== count) {
      // A fragment went missing (a reconnect dropped it): the message is lost, as an unsplit one would be.
      this.pending.delete(msg.subject);
      return undefined;
    }
    // Copied: the parser's buffer is only ours for the duration of this callback.
    entry.parts.push(msg.data.slice());
    entry.bytes += msg.data.byteLength;
    if (entry.bytes > this.maxBytes) {
      this.pending.delete(msg.subject);
      return undefined;
    }
    if (entry.parts.length < count) return undefined;
    this.pending.delete(msg.subject);
    const whole = new Uint8Array(entry.bytes);
    let at = 0;
    for (const part of entry.parts) {
      whole.set(part, at);
      at += part.byteLength;
    }
    return whole;
  }
}
