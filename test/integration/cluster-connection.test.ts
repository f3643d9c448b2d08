import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nkeys } from '@nats-io/transport-node';
import { ClusterConnection, FragmentAssembler, type ConnectionStatus } from '../../workers/cluster/connection.js';
import { connectOptionsFromConfig } from '../../gateway/cluster/connect-options.js';
import { validateConfig } from '../../gateway/config/load.js';
import { NatsServer } from '../helpers/nats-server.js';

function nextStatus(conn: ClusterConnection, type: ConnectionStatus['type']): Promise<ConnectionStatus> {
  return new Promise((resolve) => {
    const off = conn.onStatus((s) => {
      if (s.type === type) {
        off();
        resolve(s);
      }
    });
  });
}

describe('cluster connection', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-conn-'));
  const nodeKey = nkeys.createUser();
  const seedFile = path.join(dir, 'node.nk');
  let server: NatsServer;
  let tokenServer: NatsServer;

  before(async () => {
    writeFileSync(seedFile, new TextDecoder().decode(nodeKey.getSeed()) + '\n');
    server = await NatsServer.start({ users: [{ user: 'node', password: 'right-password' }], nkeys: [nodeKey.getPublicKey()] });
    tokenServer = await NatsServer.start({ token: 's3cret-token' });
  });

  after(async () => {
    await server?.dispose();
    await tokenServer?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects with a user and password, an nkey seed, or a token', async () => {
    for (const conn of [
      await ClusterConnection.connect({ servers: server.url, user: 'node', password: 'right-password' }),
      await ClusterConnection.connect({ servers: server.url, nkeySeedFile: seedFile }),
      await ClusterConnection.connect({ servers: tokenServer.url, token: 's3cret-token' }),
    ]) {
      assert.equal(conn.state, 'connected');
      await conn.close();
      assert.equal(conn.state, 'closed');
    }
  });

  it('connects with the credentials of a validated cluster config section', async () => {
    const config = validateConfig({
      endpoints: {},
      cluster: { nats: `nats://127.0.0.9:1, ${server.url}`, user: 'node', password: 'right-password', prefix: 'acme.sy' },
    });
    const conn = await ClusterConnection.connect(connectOptionsFromConfig(config.cluster!, 'gateway-test'));
    try {
      assert.equal(conn.subjects.announce, 'acme.sy.announce');
      const reply = conn.nc.subscribe('acme.sy.echo', { callback: (_err, msg) => void msg.respond(msg.data) });
      const answer = await conn.nc.request('acme.sy.echo', new Uint8Array([1, 2]));
      assert.ok(answer.subject.startsWith('acme.sy._inbox.'), `replies come back under the prefix (got ${answer.subject})`);
      reply.unsubscribe();
    } finally {
      await conn.close();
    }
  });

  it('refuses bad credentials with SY_NATS_AUTH', async () => {
    const otherKey = nkeys.createUser();
    const otherSeed = path.join(dir, 'other.nk');
    writeFileSync(otherSeed, otherKey.getSeed());
    const attempts = [
      { servers: server.url, user: 'node', password: 'wrong-password' },
      { servers: server.url },
      { servers: server.url, nkeySeedFile: otherSeed },
      { servers: tokenServer.url, token: 'wrong-token' },
    ];
    for (const attempt of attempts) {
      await assert.rejects(ClusterConnection.connect(attempt), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SY_NATS_AUTH', `${JSON.stringify(attempt)}: ${err.message}`);
        assert.match(err.message, /refused the credentials/);
        return true;
      });
    }
  });

  it('says which option is wrong before dialling', async () => {
    const cases: [Parameters<typeof ClusterConnection.connect>[0], RegExp][] = [
      [{ servers: server.url, token: 't', user: 'u', password: 'p' }, /one NATS credential/],
      [{ servers: server.url, user: 'u' }, /needs a password/],
      [{ servers: server.url, nkeySeedFile: path.join(dir, 'missing.nk') }, /cannot read the nkey seed file/],
      [{ servers: server.url, credsFile: path.join(dir, 'missing.creds') }, /cannot read the creds file/],
      [{ servers: ' , ' }, /no NATS server/],
    ];
    writeFileSync(path.join(dir, 'garbage.nk'), 'not a seed');
    cases.push([{ servers: server.url, nkeySeedFile: path.join(dir, 'garbage.nk') }, /does not hold an nkey seed/]);
    for (const [opts, message] of cases) {
      await assert.rejects(ClusterConnection.connect(opts), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SY_NATS_OPTIONS');
        assert.match(err.message, message);
        return true;
      });
    }
  });

  it('fails fast with SY_NATS_UNREACHABLE when nothing listens', async () => {
    const probe = await NatsServer.start();
    const url = probe.url;
    await probe.dispose();
    await assert.rejects(ClusterConnection.connect({ servers: url, connectTimeoutMs: 2_000 }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'SY_NATS_UNREACHABLE');
      assert.ok(err.message.includes(url.replace('nats://', '')), err.message);
      return true;
    });
  });

  it('reports disconnect and reconnect across a server restart, then works again', async () => {
    const conn = await ClusterConnection.connect({ servers: tokenServer.url, token: 's3cret-token', reconnectWaitMs: 100 });
    try {
      const disconnected = nextStatus(conn, 'disconnected');
      const reconnected = nextStatus(conn, 'reconnected');
      await tokenServer.stop();
      await disconnected;
      assert.equal(conn.state, 'disconnected');
      await tokenServer.restart();
      await reconnected;
      assert.equal(conn.state, 'connected');
      const sub = conn.nc.subscribe('switchyard.check', { max: 1 });
      conn.publish('switchyard.check', new Uint8Array([7]));
      for await (const msg of sub) assert.deepEqual([...msg.data], [7]);
    } finally {
      await conn.close();
    }
  });

  it('carries messages larger than the server limit in fragments, in order', async () => {
    const conn = await ClusterConnection.connect({ servers: tokenServer.url, token: 's3cret-token' });
    try {
      const big = randomBytes(conn.maxPayload * 3 + 12_345);
      const small = randomBytes(100);
      const assembler = new FragmentAssembler();
      const received: Uint8Array[] = [];
      const sub = conn.nc.subscribe('switchyard.big');
      const done = (async () => {
        for await (const msg of sub) {
          const whole = assembler.accept(msg);
          if (whole) received.push(whole);
          if (received.length === 3) break;
        }
      })();
      await conn.nc.flush();
      assert.equal(conn.publish('switchyard.big', small), true);
      assert.equal(conn.publish('switchyard.big', big), true);
      assert.equal(conn.publish('switchyard.big', small), true);
      await done;
      assert.equal(received.length, 3);
      assert.ok(Buffer.from(received[0]!).equals(small));
      assert.ok(Buffer.from(received[1]!).equals(big));
      assert.ok(Buffer.from(received[2]!).equals(small));
    } finally {
      await conn.close();
    }
    assert.equal(conn.publish('switchyard.big', new Uint8Array(1)), false, 'a closed connection publishes nothing');
  });

  it('drops a message larger than the assembler accepts', async () => {
    const conn = await ClusterConnection.connect({ servers: tokenServer.url, token: 's3cret-token' });
    try {
      const assembler = new FragmentAssembler(2 * conn.maxPayload);
      const sub = conn.nc.subscribe('switchyard.cap');
      const results: (Uint8Array | undefined)[] = [];
      const done = (async () => {
        for await (const msg of sub) {
          results.push(assembler.accept(msg));
          if (results.filter(Boolean).length === 1) break;
        }
      })();
      await conn.nc.flush();
      conn.publish('switchyard.cap', randomBytes(conn.maxPayload * 3));
      conn.publish('switchyard.cap', new Uint8Array([1, 2, 3]));
      await done;
      assert.deepEqual(results.filter(Boolean).map((r) => [...r!]), [[1, 2, 3]], 'the over-size message was dropped');
    } finally {
      await conn.close();
    }
  });
});
