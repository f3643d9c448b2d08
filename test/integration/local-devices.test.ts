/**
 * The gateway's own devices: it places local replicas only on devices this machine has, and an
 * ONNX endpoint only where onnxruntime's provider for the device loads, following the endpoint's
 * order of preference. The GPU is a stand-in `nvidia-smi` that prints what a real H200 printed
 * (`0, NVIDIA H200, 143771 MiB`); whether onnxruntime's CUDA provider loads is asked of the real
 * onnxruntime, so on a machine that has it the expectations follow.
 */
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { listExecutionProviders } from '../../native/onnx.js';
import { fixture, postJson, startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';

const MODEL = fileURLToPath(new URL('../../../examples/mlp/model.onnx', import.meta.url));
const H200_SMI_OUTPUT = '0, NVIDIA H200, 143771 MiB';

function fakeNvidiaSmi(): string {
  const file = path.join(tempDir('sy-smi-'), 'nvidia-smi');
  writeFileSync(file, `#!/bin/sh\necho '${H200_SMI_OUTPUT}'\n`);
  chmodSync(file, 0o755);
  return file;
}

interface Described {
  devices: { id: string; name: string; memory_bytes: number; onnx?: boolean }[];
  endpoints: { name: string; replicas: { device: string; state: string }[] }[];
}

describe('local devices', () => {
  let cudaLoads: boolean;
  let gw: TestGateway;
  before(async () => {
    cudaLoads = (await listExecutionProviders()).includes('cuda');
    gw = await startGateway(
      {
        endpoints: {
          // Prefers the GPU; an ONNX model goes there only if onnxruntime's CUDA provider loads.
          mlp: { model: MODEL, devices: ['cuda:0', 'cpu'], replicas: 1 },
          // A predictor module can use any device the machine has.
          on_gpu: { predictor: fixture('behaviours'), devices: ['cuda:0'], replicas: 1 },
        },
      },
      { gateway: { deviceDiscovery: { nvidiaSmi: fakeNvidiaSmi() } } },
    );
  });
  after(() => gw?.close());

  it('reports the devices it found, with whether onnxruntime runs on each', async () => {
    const described = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as Described;
    const gpu = described.devices.find((d) => d.id === 'cuda:0');
    assert.ok(gpu, JSON.stringify(described.devices));
    assert.equal(gpu.name, 'NVIDIA H200');
    assert.equal(gpu.memory_bytes, 143771 * 1024 * 1024);
    assert.equal(gpu.onnx, cudaLoads);
    assert.equal(described.devices.find((d) => d.id === 'cpu')?.onnx, true);
  });

  it('an ONNX endpoint falls to the next device it lists when the GPU provider does not load, and answers', async () => {
    const described = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as Described;
    const mlp = described.endpoints.find((e) => e.name === 'mlp');
    assert.deepEqual(mlp?.replicas.map((r) => r.device), [cudaLoads ? 'cuda:0' : 'cpu']);
    const res = await postJson(`${gw.url}/inference/mlp`, { x: { dims: [1, 4], data: [0.1, 0.2, 0.3, 0.4] } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.y.dims, [1, 3]);
  });

  it('a predictor module runs on the GPU the machine has, and is told so', async () => {
    const res = await postJson(`${gw.url}/inference/on_gpu`, { value: 1 });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.device, 'cuda:0');
  });
});

describe('an endpoint no local device can run is refused at start, naming the field', () => {
  it('a device this machine does not have', async () => {
    await assert.rejects(
      startGateway({ endpoints: { gpu_only: { predictor: fixture('behaviours'), devices: ['cuda:0'] } } }, { gateway: { deviceDiscovery: { nvidiaSmi: '/nonexistent/nvidia-smi' } } }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SY_CONFIG_INVALID');
        assert.match(err.message, /^endpoints\.gpu_only\.devices: no device listed can run this endpoint here \(cuda:0: not on this machine; this machine has cpu\)$/);
        return true;
      },
    );
  });

  it('an ONNX model on a GPU whose onnxruntime provider does not load', async (t) => {
    if ((await listExecutionProviders()).includes('cuda')) return t.skip('onnxruntime\'s CUDA provider loads on this machine');
    await assert.rejects(
      startGateway({ endpoints: { mlp: { model: MODEL, devices: ['cuda:0'] } } }, { gateway: { deviceDiscovery: { nvidiaSmi: fakeNvidiaSmi() } } }),
      /endpoints\.mlp\.devices: no device listed can run this endpoint here \(cuda:0: onnxruntime's cuda execution provider does not load here; this machine has cpu, cuda:0\)/,
    );
  });
});
