// What a role (gateway, router) is built from: ready clients and process-wide services, opened by the CLI.
import type { Bus } from './bus/bus.js';
import type { Subjects } from './cluster/subjects.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { Stores } from './store/ports.js';

export interface RoleDeps {
  cfg: Config;
  bus: Bus;
  stores: Stores;
  subj: Subjects;
  metrics: Metrics;
  log: Logger;
}
