// One Prometheus registry per process, with typed handles. Labels take only fixed sets of values
// (frame types, reasons, codes): never a room, user or connection.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CloseCode } from './protocol/codes.js';

export type Metrics = ReturnType<typeof createMetrics>;

/** What a gateway holds for its connections right now: sampled at every scrape, so a leak shows. */
export interface GatewayHoldings {
  /** Rooms with a local member (each one a bus subscription). */
  rooms: number;
  /** Connections in rooms, counted once per room. */
  roomMembers: number;
  /** Joins waiting for their replay, and the messages they hold meanwhile. */
  joiners: number;
  joinerBuffered: number;
  /** Users with a direct-message stream here. */
  dmUsers: number;
}

const SERVER_CLOSE_CODES = new Set<number>(Object.values(CloseCode));
/**
 * The label of a closed connection: the code the gateway chose when it ended it, 1006 when the socket
 * died without a close frame, and `other` for every code a client chose.
 */
export const closeCodeLabel = (serverCode: number | undefined, code: number): string =>
  serverCode !== undefined && SERVER_CLOSE_CODES.has(serverCode)
    ? String(serverCode)
    : code === 1006
      ? '1006'
      : 'other';

export function createMetrics(role: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry });
  const r = [registry];
  return {
    registry,
    connections: new Gauge({ name: 'rtgw_connections', help: 'Open client connections', registers: r }),
    connectionsOpened: new Counter({
      name: 'rtgw_connections_opened_total',
      help: 'Client connections accepted',
      registers: r,
    }),
    connectionsRejected: new Counter({
      name: 'rtgw_connections_rejected_total',
      help: 'Connection attempts refused, by reason (origin, unauthorized, draining, full, connect_rate, user_limit)',
      labelNames: ['reason'],
      registers: r,
    }),
    connectionsClosed: new Counter({
      name: 'rtgw_connections_closed_total',
      help: 'Client connections closed, by close code (codes a client chose count as other)',
      labelNames: ['code'],
      registers: r,
    }),
    framesReceived: new Counter({
      name: 'rtgw_frames_received_total',
      help: 'Client frames received, by type',
      labelNames: ['type'],
      registers: r,
    }),
    framesSent: new Counter({
      name: 'rtgw_frames_sent_total',
      help: 'Frames sent to clients, by type',
      labelNames: ['type'],
      registers: r,
    }),
    badFrames: new Counter({
      name: 'rtgw_bad_frames_total',
      help: 'Client frames answered with an error, by code',
      labelNames: ['code'],
      registers: r,
    }),
    deliveryLatency: new Histogram({
      name: 'rtgw_delivery_latency_seconds',
      help: 'From sequencing of a message to its hand-off to local sockets',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    retryQueueSize: new Gauge({
      name: 'rtgw_retry_queue_size',
      help: 'Unacknowledged direct messages in the compensation set (slots this router owns)',
      registers: r,
    }),
    retryDue: new Gauge({
      name: 'rtgw_retry_due',
      help: 'Compensation entries whose retry time has come (slots this router owns)',
      registers: r,
    }),
    retryOldestDue: new Gauge({
      name: 'rtgw_retry_oldest_due_seconds',
      help: 'How long the oldest due compensation entry has waited',
      registers: r,
    }),
    dmSent: new Counter({
      name: 'rtgw_dm_deliveries_total',
      help: 'Direct message deliveries published, by kind (first, retry, pending)',
      labelNames: ['kind'],
      registers: r,
    }),
    dmParked: new Counter({
      name: 'rtgw_dm_parked_total',
      help: 'Due retries parked because the recipient was offline',
      registers: r,
    }),
    dmAcked: new Counter({ name: 'rtgw_dm_acked_total', help: 'Direct messages settled by an ack', registers: r }),
    dmStored: new Counter({ name: 'rtgw_dm_stored_total', help: 'Direct messages stored in an inbox', registers: r }),
    inboxSize: new Histogram({
      name: 'rtgw_inbox_size',
      help: "Pending direct messages in the recipient's inbox, observed at each store",
      buckets: [1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10_000],
      registers: r,
    }),
    deadLetters: new Counter({
      name: 'rtgw_dead_letters_total',
      help: 'Messages moved to the dead-letter list',
      labelNames: ['reason'],
      registers: r,
    }),
    deadLettersDropped: new Counter({
      name: 'rtgw_dead_letters_dropped_total',
      help: 'Oldest dead letters dropped to keep a slot within RTGW_DEAD_LETTERS_MAX_PER_SLOT',
      registers: r,
    }),
    slowConsumerDisconnects: new Counter({
      name: 'rtgw_slow_consumer_disconnects_total',
      help: 'Connections closed with 4009 because their send buffer overflowed',
      registers: r,
    }),
    rateLimited: new Counter({
      name: 'rtgw_rate_limited_total',
      help: 'Client frames refused by the rate limit',
      registers: r,
    }),
    gapFills: new Counter({
      name: 'rtgw_gap_fills_total',
      help: 'Room stream gaps a gateway filled from history',
      registers: r,
    }),
    published: new Counter({
      name: 'rtgw_messages_sequenced_total',
      help: 'Room messages sequenced by this router',
      registers: r,
    }),
    duplicates: new Counter({
      name: 'rtgw_duplicates_total',
      help: 'Publishes recognised as repeats of an earlier mid',
      registers: r,
    }),
    slotsOwned: new Gauge({ name: 'rtgw_slots_owned', help: 'Slots this router holds a lease on', registers: r }),
    slotsTotal: new Gauge({ name: 'rtgw_slots_total', help: 'Slots in the cluster', registers: r }),
    presenceReaped: new Counter({
      name: 'rtgw_presence_reaped_total',
      help: 'Room memberships removed because their gateway died',
      registers: r,
    }),
    requestDuration: new Histogram({
      name: 'rtgw_router_request_seconds',
      help: 'Time a router spends on one request, by op',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registers: r,
    }),
    upstreamUp: new Gauge({
      name: 'rtgw_upstream_up',
      help: '1 while connected to the named dependency',
      labelNames: ['dep'],
      registers: r,
    }),
    /** Registers the gateway's holdings gauges, read from `sample` at every scrape (gateway roles only). */
    observeGateway(sample: () => GatewayHoldings): void {
      const gauge = (name: string, help: string, pick: (h: GatewayHoldings) => number) =>
        new Gauge({
          name,
          help,
          registers: r,
          collect() {
            this.set(pick(sample()));
          },
        });
      gauge('rtgw_gateway_rooms', 'Rooms with a local member (one bus subscription each)', (h) => h.rooms);
      gauge('rtgw_gateway_room_members', 'Local connections in rooms, once per room', (h) => h.roomMembers);
      gauge('rtgw_gateway_joiners', 'Joins waiting for their replay', (h) => h.joiners);
      gauge(
        'rtgw_gateway_joiner_buffered_messages',
        'Messages held for joins waiting for their replay',
        (h) => h.joinerBuffered,
      );
      gauge('rtgw_gateway_dm_users', 'Users with a direct-message stream on this gateway', (h) => h.dmUsers);
    },
  };
}
