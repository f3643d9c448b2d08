/**
 * What a Node developer would write: fastify parses the JSON, one `piscina.run` per request hands
 * the value to a worker, fastify serializes the answer. Default options throughout.
 *
 * Usage: node dist/bench/baselines/fastify-piscina.js [port]
 */
import Fastify from 'fastify';
import { Piscina } from 'piscina';

const port = Number(process.argv[2] ?? 0);
const pool = new Piscina({ filename: new URL('./echo-task.js', import.meta.url).href, name: 'echoValue' });
const app = Fastify({ logger: false });

app.get('/readyz', async () => 'ready');
app.post('/inference/:endpoint', async (request) => pool.run(request.body));

try {
  await app.listen({ port, host: '127.0.0.1' });
} catch (err) {
  console.error(`fastify-piscina: ${(err as Error).message}`);
  process.exit(1);
}
const address = app.server.address();
console.log(`listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : port}`);

process.on('SIGTERM', () => {
  void app
    .close()
    .then(() => pool.destroy())
    .finally(() => process.exit(0));
});
