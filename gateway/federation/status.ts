/**
 * What `switchyard status --nats <url>` prints: the stored deployment, and per endpoint its
 * leader, version and replicas, and every live gateway with its region and load, all read from
 * the cluster's buckets (the same data a federated gateway's `/v1/endpoints` shows).
 */
import { openKv } from '../../workers/cluster/buckets.js';
import type { ClusterConnection } from '../../workers/cluster/connection.js';
import { DeploymentStore, decodeJson } from './deployment.js';
import { GATEWAYS_BUCKET, listGateways, REPLICAS_BUCKET, type GatewayEntry } from './federation.js';
import type { ReplicaSetRecord } from './replica-set.js';

export interface FederationStatus {
  deployed_at: string | null;
  gateways: GatewayEntry[];
  endpoints: Record<string, { version: string; leader: { gateway: string; region: string; token: number } | null; desired: number | null; replicas: ReplicaSetRecord['replicas'] }>;
}

export async function readFederationStatus(connection: ClusterConnection): Promise<FederationStatus> {
  const s = connection.subjects;
  const loaded = await (await DeploymentStore.open(connection)).load();
  const replicas = await openKv(connection.nc, s.replicasBucket, REPLICAS_BUCKET);
  const gateways = await listGateways(await openKv(connection.nc, s.gatewaysBucket, GATEWAYS_BUCKET));
  const endpoints: FederationStatus['endpoints'] = {};
  for (const stored of loaded?.endpoints ?? []) {
    const e = await replicas.get(`ep.${stored.name}`);
    const record = e && e.operation === 'PUT' ? decodeJson<ReplicaSetRecord>(e.value) : undefined;
    endpoints[stored.name] = {
      version: stored.version,
      leader: record ? { gateway: record.leader, region: record.leaderRegion, token: record.token } : null,
      desired: record?.desired ?? null,
      replicas: record?.replicas ?? [],
    };
  }
  return { deployed_at: loaded?.deployment.deployedAt ?? null, gateways, endpoints };
}

/** The status as text for a terminal. */
export function formatFederationStatus(status: FederationStatus): string {
  const lines: string[] = [];
  lines.push(`deployment: ${status.deployed_at ? `deployed ${status.deployed_at}` : 'nothing deployed'}`);
  lines.push(`gateways (${status.gateways.length}):`);
  for (const g of status.gateways) {
    const load = Object.entries(g.load).map(([e, n]) => `${e}=${n}`).join(' ');
    lines.push(`  ${g.id}  region ${g.region}  ${g.url}  load ${load || '-'}  leads ${g.leading.join(',') || '-'}`);
  }
  for (const [name, e] of Object.entries(status.endpoints)) {
    const leader = e.leader ? `${e.leader.gateway} (${e.leader.region}, token ${e.leader.token})` : 'none';
    lines.push(`endpoint ${name}: version ${e.version}, desired ${e.desired ?? '-'}, leader ${leader}`);
    for (const r of e.replicas) lines.push(`  ${r.replicaId}  ${r.state}  node ${r.node} (${r.region})  ${r.device}  version ${r.version}`);
  }
  return lines.join('\n');
}
