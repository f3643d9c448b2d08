/** The endpoint a request names, for the HTTP route and the WebSocket upgrade alike. */
import type { HttpResponse } from '../../native/uws.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import { SwitchyardError } from '../../workers/protocol/errors.js';
import { writeError } from './respond.js';

export interface EndpointDirectory {
  endpoints: ReadonlyMap<string, Endpoint>;
  isDraining(): boolean;
}

/** The endpoint, or undefined once `res` was answered: 404 for an unknown name, 503 while draining. */
export function endpointFor(res: HttpResponse, name: string, directory: EndpointDirectory): Endpoint | undefined {
  const endpoint = directory.endpoints.get(name);
  if (!endpoint) {
    writeError(res, new SwitchyardError('SY_NOT_FOUND', `no endpoint named "${name}"`));
    return undefined;
  }
  if (directory.isDraining()) {
    writeError(res, new SwitchyardError('SY_SHUTTING_DOWN', 'the gateway is shutting down', { retryAfterS: 1 }));
    return undefined;
  }
  return endpoint;
}
