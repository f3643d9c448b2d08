/**
 * A JetStream cluster of nats-servers on localhost, one or more per region, with routes between
 * them; routes between servers of different regions pass through a DelayProxy, so messages that
 * cross regions are late by the delay each way. Each server can be killed and restarted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { DelayProxy } from './delay-proxy.js';
import { natsServerBinary } from './nats-server.js';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Member {
  name: string;
  region: string;
  clientPort: number;
  clusterPort: number;
  config: string;
  child?: ChildProcess | undefined;
  log: string;
}

export class NatsCluster {
  private constructor(
    private readonly members: Member[],
    private readonly proxies: DelayProxy[],
    private readonly dir: string,
  ) {}

  /** One server per entry of `regions` (e.g. ['eu', 'eu', 'us']); cross-region routes delayed by `delayMs`. */
  static async start(regions: string[], delayMs = 0): Promise<NatsCluster> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-natscluster-'));
    const members: Member[] = [];
    for (const [i, region] of regions.entries()) {
      members.push({ name: `n${i + 1}`, region, clientPort: await freePort(), clusterPort: await freePort(), config: path.join(dir, `n${i + 1}.conf`), log: '' });
    }
    const proxies: DelayProxy[] = [];
    for (const m of members) {
      const routes: string[] = [];
      for (const other of members) {
        if (other === m) continue;
        let port = other.clusterPort;
        if (other.region !== m.region && delayMs > 0) {
          const proxy = await DelayProxy.start(other.clusterPort, delayMs);
          proxies.push(proxy);
          port = proxy.port;
        }
        routes.push(`nats-route://127.0.0.1:${port}`);
      }
      writeFileSync(
        m.config,
        [
          `server_name: ${m.name}`,
          `listen: "127.0.0.1:${m.clientPort}"`,
          `jetstream { store_dir: ${JSON.stringify(path.join(dir, m.name))}, max_memory_store: 64MB, max_file_store: 1GB }`,
          `cluster { name: switchyard, listen: "127.0.0.1:${m.clusterPort}", no_advertise: true, routes: [ ${routes.map((r) => JSON.stringify(r)).join(', ')} ] }`,
        ].join('\n'),
      );
    }
    const cluster = new NatsCluster(members, proxies, dir);
    await Promise.all(members.map((m) => cluster.launch(m)));
    await cluster.waitForJetStream();
    return cluster;
  }

  /** Client URL of one server. */
  url(i: number): string {
    return `nats://127.0.0.1:${this.members[i]!.clientPort}`;
  }

  /** Every server, the first ones of `region` first. */
  urls(region?: string): string {
    const ordered = [...this.members].sort((a, b) => Number(b.region === region) - Number(a.region === region));
    return ordered.map((m) => `nats://127.0.0.1:${m.clientPort}`).join(',');
  }

  output(i: number): string {
    return this.members[i]!.log;
  }

  async kill(i: number): Promise<void> {
    const m = this.members[i]!;
    const child = m.child;
    m.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  async dispose(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    await Promise.all(this.proxies.map((p) => p.close()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async launch(m: Member): Promise<void> {
    const child = spawn(natsServerBinary(), ['-c', m.config], { stdio: ['ignore', 'pipe', 'pipe'] });
    m.child = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server ${m.name} did not start:\n${m.log}`)), 15_000);
      const onData = (chunk: Buffer) => {
        m.log += chunk.toString();
        if (/Server is ready/.test(m.log)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server ${m.name} exited (${code}):\n${m.log}`));
      });
    });
  }

  /** JetStream answers once the servers elected a metadata leader. */
  private async waitForJetStream(): Promise<void> {
    const nc = await connect({ servers: this.urls() });
    try {
      const until = Date.now() + 30_000;
      for (;;) {
        try {
          const jsm = await jetstreamManager(nc, { timeout: 2_000 });
          await jsm.getAccountInfo();
          return;
        } catch (err) {
          if (Date.now() > until) throw new Error(`JetStream cluster not ready: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    } finally {
      await nc.close();
    }
  }
}
