// What a role (gateway, router) is built from: ready clients and process-wide services, opened by the CLI.
// Each role sees only its part of the stores; the CLI's full Stores satisfies both.
import type { Bus } from './bus/bus.js';
import type { Subjects } from './cluster/subjects.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { GatewayStores, RouterStores } from './store/ports.js';

export interface RoleDeps<S> {
  cfg: Config;
  bus: Bus;
  stores: S;
  subj: Subjects;
  metrics: Metrics;
  log: Logger;
}

export type GatewayDeps = RoleDeps<GatewayStores>;
export type RouterDeps = RoleDeps<RouterStores>;
