/** Per-endpoint bearer keys, compared in constant time (both sides hashed to equal length). */
import { createHash, timingSafeEqual } from 'node:crypto';
import { SwitchyardError } from '../../workers/protocol/errors.js';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

export class ApiKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  /** Throws SY_UNAUTHORIZED unless `authorization` is `Bearer <one of the keys>`. */
  check(authorization: string): void {
    if (this.digests.length === 0) return;
    const match = /^Bearer\s+(.+)$/i.exec(authorization);
    if (!match) throw new SwitchyardError('SY_UNAUTHORIZED', 'this endpoint needs "Authorization: Bearer <key>"');
    const presented = digest(match[1]!.trim());
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, presented) || ok;
    if (!ok) throw new SwitchyardError('SY_UNAUTHORIZED', 'the API key is not valid for this endpoint');
  }
}

/**
 * Keys per endpoint, built on first use: a federated gateway gains endpoints after its routes are
 * installed (a deployment grows), and each must check its own keys from its first request.
 */
export class EndpointKeys extends Map<string, ApiKeys> {
  constructor(private readonly endpoints: ReadonlyMap<string, { readonly config: { readonly api_keys: readonly string[] } }>) {
    super();
  }

  override get(name: string): ApiKeys | undefined {
    let keys = super.get(name);
    const endpoint = keys ? undefined : this.endpoints.get(name);
    if (endpoint) this.set(name, (keys = new ApiKeys(endpoint.config.api_keys)));
    return keys;
  }
}
