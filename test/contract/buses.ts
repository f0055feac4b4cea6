// The Bus backends the bus contracts run against: MemoryBus on a shared hub, and NatsBus on a real
// nats-server started for the file.
import type { Bus } from '../../shared/bus/bus.js';
import { MemoryHub, type MemoryBusOptions } from '../../shared/bus/memory.js';
import { connectNats, NatsBus } from '../../shared/bus/nats.js';
import { startNats } from '../harness/nats.js';

export type OnError = NonNullable<MemoryBusOptions['onError']>;

export interface BusBackend {
  /** A new client with a connection of its own. */
  connect(opts?: { onError?: OnError }): Promise<Bus>;
  stop?(): Promise<void>;
}

export async function memoryBusBackend(): Promise<BusBackend> {
  const hub = new MemoryHub();
  return { connect: async (opts) => hub.connect(opts) };
}

/** `clientName`: the NATS connection name (it shows in nats-server's logs). */
export async function natsBusBackend(clientName: string): Promise<BusBackend> {
  const server = await startNats();
  return {
    connect: async (opts) => new NatsBus(await connectNats([server.url], clientName), opts),
    stop: () => server.stop(),
  };
}
