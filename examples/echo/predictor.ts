/** The smallest predictor: answers with what it was sent. */
import type { Predictor } from '../../workers/predictor/api.js';

const echo: Predictor = {
  predict(input) {
    return input;
  },
};

export default echo;
