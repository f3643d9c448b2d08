/** A real nginx in front of a gateway, on a free port with a temporary config, for proxy tests. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const NGINX_MISSING = spawnSync('nginx', ['-v']).error ? 'nginx is not installed (Debian: apt-get install nginx)' : false;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** The `location` block the README recommends, verbatim. */
export const NGINX_LOCATION = `
      proxy_pass http://switchyard;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;`;

export interface Nginx {
  port: number;
  close(): Promise<void>;
}

export async function startNginx(upstreamPort: number): Promise<Nginx> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sy-nginx-'));
  writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream switchyard { server 127.0.0.1:${upstreamPort}; keepalive 16; }
  server {
    listen 127.0.0.1:${port};
    location / {${NGINX_LOCATION}
    }
  }
}
`,
  );
  const child: ChildProcess = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // If the test process ends first, nginx (in the foreground, so our child) ends with it.
  const stop = () => child.kill('SIGTERM');
  process.once('exit', stop);
  // Ready once it accepts connections (a wait limit, not an assertion).
  const until = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > until || child.exitCode !== null) {
      stop();
      throw new Error(`nginx did not start on port ${port}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    async close() {
      process.off('exit', stop);
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
