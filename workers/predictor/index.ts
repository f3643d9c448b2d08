/**
 * `switchyard/predictor`: what a predictor module may import. It loads no server code (a replica
 * imports the predictor in its own worker thread), only the types, the tensor wire format and
 * the coded error a predictor throws to answer with a given status.
 */
export type { Predictor, PredictRequest, SetupContext, StreamChunk } from './api.js';
export {
  decodeInputs,
  isWireType,
  typedView,
  WIRE_TYPES,
  WireTensor,
  zerosOf,
  type DecodedTensor,
  type JsonTensor,
  type TensorSpec,
  type WireArray,
  type WireType,
} from './tensors.js';
export { SwitchyardError, type ErrorCode } from '../protocol/errors.js';
