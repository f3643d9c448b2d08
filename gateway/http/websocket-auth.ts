/**
 * How a browser WebSocket presents an API key. Browsers cannot set `Authorization` on a
 * WebSocket, but they can offer subprotocols, so a key may come as one:
 *
 *   new WebSocket(url, ['switchyard.v1', 'switchyard.bearer.' + key])
 *
 * The gateway checks the key and answers with the subprotocol `switchyard.v1` (a browser fails a
 * connection whose answer names a protocol it did not offer, and the key is never sent back).
 * Keys sent this way must be made of characters a subprotocol token allows (letters, digits and
 * `!#$%&'*+-.^_|~`). An `Authorization` header, where a client can send one, still works.
 * Neither the key nor the offer reaches the predictor or the logs.
 */
import { SwitchyardError } from '../../workers/protocol/errors.js';

export const WS_PROTOCOL = 'switchyard.v1';
export const WS_BEARER_PREFIX = 'switchyard.bearer.';

export interface WebSocketOffer {
  /** What to check against the endpoint's keys, as an `Authorization` value. */
  authorization: string;
  /** The subprotocol to answer with ('' for none). */
  protocol: string;
}

/** Reads the upgrade's credentials and chooses its subprotocol. Throws SY_BAD_REQUEST for a key without `switchyard.v1`. */
export function webSocketOffer(authorization: string, offered: string): WebSocketOffer {
  if (offered === '') return { authorization, protocol: '' };
  let key: string | undefined;
  let speaksOurs = false;
  for (const raw of offered.split(',')) {
    const token = raw.trim();
    if (token === WS_PROTOCOL) speaksOurs = true;
    else if (token.startsWith(WS_BEARER_PREFIX)) key = token.slice(WS_BEARER_PREFIX.length);
  }
  if (key !== undefined && !speaksOurs) {
    throw new SwitchyardError('SY_BAD_REQUEST', `a key offered as a subprotocol needs "${WS_PROTOCOL}" offered too, to be answered with it`);
  }
  return {
    authorization: key !== undefined && authorization === '' ? `Bearer ${key}` : authorization,
    protocol: speaksOurs ? WS_PROTOCOL : '',
  };
}
