/**
 * Writes the demo MLP as examples/mlp/model.onnx (opset 13, dynamic batch), with the weights of
 * weights.ts as initializers. The build runs it, so the repository carries no binary model:
 *
 *   node dist/examples/mlp/make-model.js
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import onnxProto from 'onnx-proto';
import { B1, B2, HIDDEN_SIZE, INPUT_SIZE, OUTPUT_SIZE, W1, W2 } from './weights.js';

const { onnx } = onnxProto;

/** The repository root, whether this runs compiled (dist/examples/mlp) or from source (examples/mlp). */
function repositoryRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const twoUp = path.resolve(here, '../..');
  return path.basename(twoUp) === 'dist' ? path.dirname(twoUp) : twoUp;
}

export const MLP_MODEL_PATH = path.join(repositoryRoot(), 'examples', 'mlp', 'model.onnx');

function floatTensor(name: string, dims: number[], values: Float32Array): import('onnx-proto').onnx.ITensorProto {
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, floatData: Array.from(values) };
}

function floatValue(name: string, width: number): import('onnx-proto').onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: width }] } } },
  };
}

/** The model's protobuf bytes. */
export function buildMlpModel(): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'switchyard',
    docString: 'Demo MLP: y = relu(x·W1 + b1)·W2 + b2, probs = softmax(y).',
    graph: {
      name: 'mlp',
      initializer: [
        floatTensor('W1', [INPUT_SIZE, HIDDEN_SIZE], W1),
        floatTensor('b1', [HIDDEN_SIZE], B1),
        floatTensor('W2', [HIDDEN_SIZE, OUTPUT_SIZE], W2),
        floatTensor('b2', [OUTPUT_SIZE], B2),
      ],
      node: [
        { opType: 'Gemm', name: 'dense1', input: ['x', 'W1', 'b1'], output: ['pre_relu'] },
        { opType: 'Relu', name: 'relu', input: ['pre_relu'], output: ['hidden'] },
        { opType: 'Gemm', name: 'dense2', input: ['hidden', 'W2', 'b2'], output: ['y'] },
        {
          opType: 'Softmax',
          name: 'softmax',
          input: ['y'],
          output: ['probs'],
          attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: -1 }],
        },
      ],
      input: [floatValue('x', INPUT_SIZE)],
      output: [floatValue('y', OUTPUT_SIZE), floatValue('probs', OUTPUT_SIZE)],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Writes the model (via a temporary file and a rename, so a concurrent reader never sees half of it). */
export function writeMlpModel(target: string = MLP_MODEL_PATH): string {
  mkdirSync(path.dirname(target), { recursive: true });
  const partial = `${target}.${process.pid}.partial`;
  writeFileSync(partial, buildMlpModel());
  renameSync(partial, target);
  return target;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(`wrote ${writeMlpModel()}`);
}
