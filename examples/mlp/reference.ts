/** The demo MLP's forward pass in plain TypeScript, from the same weights the ONNX model holds. */
import { B1, B2, HIDDEN_SIZE, INPUT_SIZE, OUTPUT_SIZE, W1, W2 } from './weights.js';

export interface MlpOutputs {
  /** [batch, OUTPUT_SIZE] logits. */
  y: Float64Array;
  /** [batch, OUTPUT_SIZE] softmax of y per row. */
  probs: Float64Array;
}

/** `x` holds `batch` rows of INPUT_SIZE values, row-major. */
export function mlpForward(x: ArrayLike<number>, batch: number): MlpOutputs {
  if (x.length !== batch * INPUT_SIZE) throw new RangeError(`x has ${x.length} values; ${batch} rows need ${batch * INPUT_SIZE}`);
  const y = new Float64Array(batch * OUTPUT_SIZE);
  const probs = new Float64Array(batch * OUTPUT_SIZE);
  const hidden = new Float64Array(HIDDEN_SIZE);
  // Every index below stays within the sizes the weights and the check above fix, hence the `!`s.
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < HIDDEN_SIZE; h++) {
      let sum = B1[h]!;
      for (let i = 0; i < INPUT_SIZE; i++) sum += x[b * INPUT_SIZE + i]! * W1[i * HIDDEN_SIZE + h]!;
      hidden[h] = Math.max(0, sum);
    }
    const row = b * OUTPUT_SIZE;
    for (let o = 0; o < OUTPUT_SIZE; o++) {
      let sum = B2[o]!;
      for (let h = 0; h < HIDDEN_SIZE; h++) sum += hidden[h]! * W2[h * OUTPUT_SIZE + o]!;
      y[row + o] = sum;
    }
    // Subtracting the row maximum keeps exp() finite; softmax is unchanged by it.
    let max = -Infinity;
    for (let o = 0; o < OUTPUT_SIZE; o++) max = Math.max(max, y[row + o]!);
    let total = 0;
    for (let o = 0; o < OUTPUT_SIZE; o++) total += (probs[row + o] = Math.exp(y[row + o]! - max));
    for (let o = 0; o < OUTPUT_SIZE; o++) probs[row + o]! /= total;
  }
  return { y, probs };
}
