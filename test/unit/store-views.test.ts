// The per-role views of the stores (shared/store/ports.ts): what the gateway and the router may touch.
// Checked by the type checker (`tsc -p test/tsconfig.json`); at run time these assertions do nothing.
import { describe, expectTypeOf, it } from 'vitest';
import type { GatewayDeps, RouterDeps } from '../../shared/deps.js';
import type { MemoryStores } from '../../shared/store/memory.js';
import type { GatewayStores, RouterStores, Stores } from '../../shared/store/ports.js';

describe('role views of the stores', () => {
  it('are satisfied by the full Stores of either engine, as the CLI hands it to both roles', () => {
    expectTypeOf<Stores>().toExtend<GatewayStores>();
    expectTypeOf<Stores>().toExtend<RouterStores>();
    expectTypeOf<MemoryStores>().toExtend<GatewayStores>();
    expectTypeOf<GatewayDeps['stores']>().toEqualTypeOf<GatewayStores>();
    expectTypeOf<RouterDeps['stores']>().toEqualTypeOf<RouterStores>();
  });

  it('keep writes of messages in the router: the gateway never appends, never reaps, never takes a lease', () => {
    expectTypeOf<GatewayStores['log']>().not.toHaveProperty('append');
    expectTypeOf<GatewayStores['inbox']>().not.toHaveProperty('append');
    expectTypeOf<GatewayStores['inbox']>().not.toHaveProperty('claimDue');
    expectTypeOf<GatewayStores['presence']>().not.toHaveProperty('reap');
    expectTypeOf<GatewayStores>().not.toHaveProperty('leases');
  });

  it("leave the gateway's work to the gateway: the router neither reads history nor hands out pending messages", () => {
    expectTypeOf<RouterStores['log']>().not.toHaveProperty('read');
    expectTypeOf<RouterStores['inbox']>().not.toHaveProperty('pending');
    expectTypeOf<RouterStores['inbox']>().not.toHaveProperty('ack');
    expectTypeOf<RouterStores['presence']>().not.toHaveProperty('connect');
    expectTypeOf<RouterStores['presence']>().not.toHaveProperty('join');
  });
});
