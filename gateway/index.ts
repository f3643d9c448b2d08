/**
 * `switchyard`: the package's public API; every other module under dist/ is internal and may
 * change. Start a gateway or a node agent from code, and write predictors against the types.
 * A predictor that imports values (not only types) at run time takes them from
 * `switchyard/predictor`, which loads no server code into its worker thread.
 */
import { Gateway, type GatewayOptions } from './gateway.js';
import { validateConfig } from './config/load.js';
import type { ConfigInput } from './config/schema.js';
import { NodeAgent, type NodeAgentOptions } from '../workers/node/agent.js';

export * from '../workers/predictor/index.js';
export { Gateway, type GatewayOptions } from './gateway.js';
export { NodeAgent, type NodeAgentOptions } from '../workers/node/agent.js';
export { ConfigError, loadConfigFile, validateConfig } from './config/load.js';
export { demoConfig } from './config/demo.js';
export type { AutoscalingConfig, ClusterConfig, Config, ConfigInput, EndpointConfig, ServerConfig } from './config/schema.js';

/**
 * Validates `config` (the YAML file's shape: defaults filled in, unknown fields refused with a
 * ConfigError naming them; relative paths resolve against the working directory), then starts
 * serving. `gateway.port` is the port it listens on; `gateway.shutdown()` drains and stops it.
 */
export function startGateway(config: ConfigInput, options: GatewayOptions = {}): Promise<Gateway> {
  return Gateway.start(validateConfig(config), options);
}

/** Joins the cluster's NATS as a node agent that hosts replicas for gateways; `agent.close()` drains and leaves. */
export function startNodeAgent(options: NodeAgentOptions): Promise<NodeAgent> {
  return NodeAgent.start(options);
}
