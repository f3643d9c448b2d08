import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { discoverDevices, parseNvidiaSmi, selectDevices } from '../../native/devices.js';

describe('device discovery', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-devices-'));
  const tool = (name: string, script: string): string => {
    const file = path.join(dir, name);
    writeFileSync(file, `#!/bin/sh\n${script}\n`);
    chmodSync(file, 0o755);
    return file;
  };

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('always offers the CPU with its cores and memory', async () => {
    const devices = await discoverDevices({ nvidiaSmi: path.join(dir, 'absent-nvidia-smi'), platform: 'linux' });
    assert.deepEqual(devices.map((d) => d.id), ['cpu']);
    assert.equal(devices[0]?.kind, 'cpu');
    assert.ok((devices[0]?.cores ?? 0) >= 1);
    assert.equal(devices[0]?.memoryBytes, os.totalmem());
  });

  it('marks each device by whether its onnxruntime provider really loads', async () => {
    const smi = tool('nvidia-smi-onnx', `printf '0, NVIDIA H100 80GB HBM3, 81559 MiB\\n'`);
    const cudaMissing = await discoverDevices({ nvidiaSmi: smi, platform: 'linux', onnxProviders: async () => ['cpu'] });
    assert.deepEqual(cudaMissing.map((d) => [d.id, d.onnx]), [['cpu', true], ['cuda:0', false]]);
    const cudaLoads = await discoverDevices({ nvidiaSmi: smi, platform: 'linux', onnxProviders: async () => ['cpu', 'cuda'] });
    assert.deepEqual(cudaLoads.map((d) => [d.id, d.onnx]), [['cpu', true], ['cuda:0', true]]);
    // The real probe on this machine: the CPU provider always loads.
    const real = await discoverDevices({ nvidiaSmi: path.join(dir, 'absent-nvidia-smi'), platform: 'linux' });
    assert.equal(real[0]!.onnx, true);
  });

  it('lists NVIDIA GPUs from nvidia-smi', async () => {
    const smi = tool('nvidia-smi', `printf '0, NVIDIA H100 80GB HBM3, 81559 MiB\\n1, NVIDIA GeForce RTX 4090, 24564 MiB\\n'`);
    const devices = await discoverDevices({ nvidiaSmi: smi, platform: 'linux' });
    assert.deepEqual(
      devices.slice(1).map((d) => [d.id, d.kind, d.name, d.memoryBytes]),
      [
        ['cuda:0', 'cuda', 'NVIDIA H100 80GB HBM3', 81559 * 1024 * 1024],
        ['cuda:1', 'cuda', 'NVIDIA GeForce RTX 4090', 24564 * 1024 * 1024],
      ],
    );
  });

  it('treats a failing or hung nvidia-smi as no GPU, within the probe timeout', async () => {
    const failing = tool('failing-smi', `echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver' >&2; exit 9`);
    assert.deepEqual((await discoverDevices({ nvidiaSmi: failing, platform: 'linux' })).map((d) => d.id), ['cpu']);
    const hung = tool('hung-smi', 'exec sleep 30');
    assert.deepEqual((await discoverDevices({ nvidiaSmi: hung, probeTimeoutMs: 200, platform: 'linux' })).map((d) => d.id), ['cpu']);
  });

  it('offers CoreML on Apple silicon only', async () => {
    const none = path.join(dir, 'absent');
    assert.deepEqual((await discoverDevices({ nvidiaSmi: none, platform: 'darwin', arch: 'arm64' })).map((d) => d.id), ['cpu', 'coreml']);
    assert.deepEqual((await discoverDevices({ nvidiaSmi: none, platform: 'darwin', arch: 'x64' })).map((d) => d.id), ['cpu']);
  });

  it('parses names with commas and skips lines it does not understand', () => {
    const gpus = parseNvidiaSmi('0, Tesla T4, rev. 2, 15360 MiB\n\nNo devices were found\n3, A10G, [N/A]\n');
    assert.deepEqual(gpus.map((g) => [g.id, g.name]), [['cuda:0', 'Tesla T4, rev. 2']]);
  });

  it('selects devices from --devices, refusing what the machine lacks', () => {
    const available = [
      { id: 'cpu', kind: 'cpu' as const, name: 'x', memoryBytes: 1, cores: 2 },
      { id: 'cuda:0', kind: 'cuda' as const, name: 'g', memoryBytes: 1 },
    ];
    assert.deepEqual(selectDevices('auto', available).map((d) => d.id), ['cpu', 'cuda:0']);
    assert.deepEqual(selectDevices(' cuda:0 , cpu ', available).map((d) => d.id), ['cuda:0', 'cpu']);
    assert.throws(() => selectDevices('cuda:1', available), /this machine has no cuda:1 \(it has: cpu, cuda:0\)/);
    assert.throws(() => selectDevices('cpu,cpu', available), /listed twice/);
    assert.throws(() => selectDevices('gpu0', available), /"gpu0" is not a device/);
    assert.throws(() => selectDevices('', available), /--devices must be/);
    assert.throws(() => selectDevices('cpu', available.slice(1)), (err: Error & { code?: string }) => err.code === 'SY_CONFIG_INVALID');
  });
});
