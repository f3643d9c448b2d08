/**
 * A real nats-server for tests: own port, own JetStream folder, optional auth. The binary comes
 * from the OS (`apt-get install nats-server`); when it is missing the test fails and says so,
 * because a cluster test that skips proves nothing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface NatsServerOptions {
  /** Clients must send this token. */
  token?: string;
  /** Clients must log in as one of these. */
  users?: { user: string; password: string; permissions?: { publish: string[]; subscribe: string[] } }[];
  /** Public nkeys (`U...`) allowed to connect. */
  nkeys?: string[];
}

const READY = /Server is ready/;
const LISTENING = /Listening for client connections on [^\s]*:(\d+)/;
const START_TIMEOUT_MS = 10_000;

export function natsServerBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const bin = found.stdout.trim();
  if (found.status !== 0 || !bin) {
    throw new Error('nats-server is not installed (cluster tests need it): apt-get install -y nats-server');
  }
  return bin;
}

function authBlock(opts: NatsServerOptions): string {
  if (opts.token) return `authorization { token: ${JSON.stringify(opts.token)} }`;
  const users = [
    ...(opts.users ?? []).map((u) => {
      const permissions = u.permissions ? `, permissions: { publish: ${JSON.stringify(u.permissions.publish)}, subscribe: ${JSON.stringify(u.permissions.subscribe)} }` : '';
      return `{ user: ${JSON.stringify(u.user)}, password: ${JSON.stringify(u.password)}${permissions} }`;
    }),
    ...(opts.nkeys ?? []).map((k) => `{ nkey: ${JSON.stringify(k)} }`),
  ];
  return users.length ? `authorization { users: [ ${users.join(', ')} ] }` : '';
}

export class NatsServer {
  private child: ChildProcess | undefined;
  private port = -1;
  private readonly dir: string;
  private readonly bin: string;
  private log = '';

  private constructor(private readonly opts: NatsServerOptions) {
    this.bin = natsServerBinary();
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-nats-'));
  }

  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    const server = new NatsServer(opts);
    await server.launch();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** What the server printed, for a failing test's message. */
  get output(): string {
    return this.log;
  }

  /** Stops the server (its JetStream data stays) so clients see an outage. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts it again on the same port with the same JetStream data. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const config = path.join(this.dir, 'nats.conf');
    writeFileSync(
      config,
      [
        `listen: "127.0.0.1:${this.port}"`,
        `jetstream { store_dir: ${JSON.stringify(path.join(this.dir, 'js'))}, max_memory_store: 64MB, max_file_store: 1GB }`,
        authBlock(this.opts),
      ].join('\n'),
    );
    const child = spawn(this.bin, ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.log = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`nats-server did not become ready in ${START_TIMEOUT_MS} ms:\n${this.log}`)), START_TIMEOUT_MS);
      const onData = (chunk: Buffer) => {
        this.log += chunk.toString();
        const listening = LISTENING.exec(this.log);
        if (listening && this.port === -1) this.port = Number(listening[1]);
        if (READY.test(this.log) && this.port !== -1) {
          clearTimeout(timer);
          resolve();
        }
      };
      const fail = (err: Error) => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(err);
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('error', fail);
      child.once('exit', (code) => fail(new Error(`nats-server exited (${code}) before it was ready:\n${this.log}`)));
    });
  }
}
