// The pipelined slot requests (shared/cluster/slot-rpc.ts) on MemoryBus and on NatsBus with a real
// nats-server: answers come back batched and in any order; nobody owning the slot, or a "moved" answer,
// sends the request again until an owner answers; a silent owner fails it with `unavailable` at the
// deadline without a second send; error replies keep their code; other requests get plain replies.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toText, type Bus, type BusMsg } from '../../shared/bus/bus.js';
import { decodeSlotRequest, encodeSlotAnswer, MOVED_REPLY, type SlotRequest } from '../../shared/cluster/messages.js';
import { SlotClient, SlotReplies } from '../../shared/cluster/slot-rpc.js';
import { subjects } from '../../shared/cluster/subjects.js';
import { errorReply } from '../../shared/errors.js';
import { waitFor } from '../harness/wait.js';
import { memoryBusBackend, natsBusBackend, type BusBackend } from './buses.js';

const req = (n: number): SlotRequest => ({ op: 'pub', room: 'r', from: 'u', d: String(n), by: 'u' });
const TIMEOUT_MS = 1500;

function contract(name: string, open: () => Promise<BusBackend>) {
  describe(`slot requests on ${name}`, () => {
    let backend: Awaited<ReturnType<typeof open>>;
    const buses: Bus[] = [];
    const bus = async () => {
      const b = await backend.connect();
      buses.push(b);
      return b;
    };
    beforeAll(async () => {
      backend = await open();
    });
    afterAll(async () => {
      await Promise.all(buses.map((b) => b.close()));
      await backend.stop?.();
    });
    const fresh = () => subjects(`t${randomBytes(4).toString('hex')}`);

    /** An owner of `slot` answering through SlotReplies with `answer(request, msg)` (undefined: stay silent). */
    async function owner(
      b: Bus,
      subj: ReturnType<typeof subjects>,
      slot: number,
      answer: (r: SlotRequest, m: BusMsg) => string | undefined,
    ) {
      const replies = new SlotReplies(b, subj);
      const seen: SlotRequest[] = [];
      const sub = b.subscribe(subj.slot(slot), (m) => {
        const r = decodeSlotRequest(m.data)!;
        seen.push(r);
        const a = answer(r, m);
        if (a !== undefined) replies.send(m, a);
      });
      await b.flush();
      return { seen, sub };
    }

    it('pipelines many requests and matches each batched answer to its request', async () => {
      const subj = fresh();
      const [a, b] = [await bus(), await bus()];
      const { seen } = await owner(b, subj, 3, (r) => JSON.stringify({ seq: Number((r as { d: string }).d) * 10 }));
      const client = new SlotClient(a, subj, 'gw-1', TIMEOUT_MS);
      const batches: number[] = [];
      a.subscribe(subj.batchReply(subj.replies('gw-1')), (m) => void batches.push(toText(m.data).split('\n').length));
      const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => client.request(3, req(i))));
      expect(answers.map((x) => x.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i * 10));
      expect(seen).toHaveLength(200);
      // Answered in batches, not one message each.
      await waitFor(() => batches.reduce((x, y) => x + y, 0) === 200, 3000, 'every answer counted');
      expect(batches.length).toBeLessThan(200);
      client.close();
    });

    it('sends again while nobody owns the slot, and after a "moved" answer, until an owner answers', async () => {
      const subj = fresh();
      const [a, b, c] = [await bus(), await bus(), await bus()];
      const client = new SlotClient(a, subj, 'gw-2', 5000);
      const pending = client.request(4, req(1));
      // Nobody yet; then a router handing the slot over; then the new owner.
      await new Promise((r) => setTimeout(r, 150));
      const moving = await owner(b, subj, 4, () => encodeSlotAnswer(MOVED_REPLY));
      await waitFor(() => moving.seen.length >= 1, 3000, 'the moving router to see it');
      moving.sub.unsubscribe();
      await b.flush();
      const next = await owner(c, subj, 4, () => JSON.stringify({ seq: 7 }));
      expect(await pending).toEqual({ seq: 7 });
      expect(next.seen).toHaveLength(1);
      client.close();
    });

    it('fails at the deadline with unavailable, without a second send, when the owner stays silent', async () => {
      const subj = fresh();
      const [a, b] = [await bus(), await bus()];
      const silent = await owner(b, subj, 5, () => undefined);
      const client = new SlotClient(a, subj, 'gw-3', TIMEOUT_MS);
      const started = Date.now();
      await expect(client.request(5, req(1))).rejects.toMatchObject({
        code: 'unavailable',
        message: 'router did not answer in time',
      });
      expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
      expect(silent.seen).toHaveLength(1);
      client.close();
    });

    it('passes an error reply on with its code; answers requests that are not a slot client’s with a plain reply', async () => {
      const subj = fresh();
      const [a, b] = [await bus(), await bus()];
      await owner(b, subj, 6, () => JSON.stringify(errorReply('forbidden', 'no')));
      const client = new SlotClient(a, subj, 'gw-4', TIMEOUT_MS);
      await expect(client.request(6, req(1))).rejects.toMatchObject({ code: 'forbidden', message: 'no' });
      expect(JSON.parse(toText(await a.request(subj.slot(6), JSON.stringify(req(2)), 2000)))).toEqual(
        errorReply('forbidden', 'no'),
      );
      client.close();
    });

    it('fails at once while the bus is disconnected or closed', async () => {
      const subj = fresh();
      const a = await backend.connect();
      const client = new SlotClient(a, subj, 'gw-5', TIMEOUT_MS);
      await a.close();
      await expect(client.request(1, req(1))).rejects.toMatchObject({ code: 'unavailable' });
    });
  });
}

contract('MemoryBus', memoryBusBackend);
contract('NatsBus', () => natsBusBackend('slot-rpc'));
