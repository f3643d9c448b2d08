/**
 * Fixed weights of the demo MLP: x [batch, 4] → dense 4×8 + bias → ReLU → dense 8×3 + bias → y
 * [batch, 3], and probs = softmax(y). Built from sine and cosine so that every build and every
 * machine gets the same model, with hidden units both active and cut off by the ReLU.
 * Matrices are row-major float32 (input index first).
 */
export const INPUT_SIZE = 4;
export const HIDDEN_SIZE = 8;
export const OUTPUT_SIZE = 3;

function matrix(rows: number, cols: number, at: (row: number, col: number) => number): Float32Array {
  const values = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) values[r * cols + c] = at(r, c);
  return values;
}

/** [INPUT_SIZE, HIDDEN_SIZE] */
export const W1 = matrix(INPUT_SIZE, HIDDEN_SIZE, (r, c) => Math.sin(1 + r * HIDDEN_SIZE + c));
/** [HIDDEN_SIZE] */
export const B1 = matrix(1, HIDDEN_SIZE, (_, c) => 0.2 * Math.cos(1 + c));
/** [HIDDEN_SIZE, OUTPUT_SIZE] */
export const W2 = matrix(HIDDEN_SIZE, OUTPUT_SIZE, (r, c) => 1.5 * Math.cos(1 + r * OUTPUT_SIZE + c));
/** [OUTPUT_SIZE] */
export const B2 = matrix(1, OUTPUT_SIZE, (_, c) => 0.2 * Math.sin(1 + c));
