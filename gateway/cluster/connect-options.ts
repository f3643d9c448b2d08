/** The `cluster:` config section, read as the options of one NATS connection (the wire side knows no config). */
import type { ClusterConfig } from '../config/schema.js';
import type { ClusterConnectOptions } from '../../workers/cluster/connection.js';

export function connectOptionsFromConfig(cluster: ClusterConfig, name?: string): ClusterConnectOptions {
  return {
    servers: cluster.nats,
    prefix: cluster.prefix,
    name,
    token: cluster.token,
    user: cluster.user,
    password: cluster.password,
    nkeySeedFile: cluster.nkey_seed_file,
    credsFile: cluster.creds_file,
    tls: cluster.tls && { caFile: cluster.tls.ca_file, certFile: cluster.tls.cert_file, keyFile: cluster.tls.key_file },
  };
}
