// One contract for every Bus: the NATS core semantics written on the port, run against MemoryBus and
// against NatsBus on a real nats-server. Every test works under its own subject prefix.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { toText, type Bus, type BusErrorCode, type BusMsg, type Subscription } from '../../shared/bus/bus.js';
import { MemoryBus, MemoryHub } from '../../shared/bus/memory.js';
import { connectNats, NatsBus, type NatsStatus } from '../../shared/bus/nats.js';
import { startNats } from '../harness/nats.js';
import { memoryBusBackend, natsBusBackend, type BusBackend, type OnError } from './buses.js';
import { waitFor } from '../harness/wait.js';

const run = randomBytes(4).toString('hex');
let seq = 0;
const uniquePrefix = () => `t${run}.${++seq}`;

function collect(bus: Bus, subject: string, opts?: { queue?: string }) {
  const got: string[] = [];
  const subjects: string[] = [];
  const sub = bus.subscribe(
    subject,
    (m) => {
      got.push(toText(m.data));
      subjects.push(m.subject);
    },
    opts,
  );
  return { got, subjects, sub };
}

/**
 * Once every publish of `pub` reached the server and `sub`'s own flush came back, everything routed to
 * `sub` before has been handed to its handlers (one ordered stream per connection): what did not arrive
 * by then never will.
 */
async function settle(pub: Bus, sub: Bus): Promise<void> {
  await pub.flush();
  await sub.flush();
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

const busError = (code: BusErrorCode) => expect.objectContaining({ name: 'BusError', code });

function busContract(name: string, backend: () => Promise<BusBackend>) {
  describe(`Bus contract: ${name}`, () => {
    let impl: BusBackend;
    let opened: Bus[] = [];
    let p = '';

    beforeAll(async () => {
      impl = await backend();
    });
    afterAll(async () => {
      await impl?.stop?.();
    });
    afterEach(async () => {
      await Promise.all(opened.map((b) => b.close()));
      opened = [];
    });

    beforeEach(() => {
      p = uniquePrefix();
    });

    const open = async (opts?: { onError?: OnError }) => {
      const bus = await impl.connect(opts);
      opened.push(bus);
      return bus;
    };
    const openTwo = async () => [await open(), await open()] as const;

    it('delivers to subscribers of the exact subject only, never inside publish', async () => {
      const [a, b] = await openTwo();
      const other = collect(b, `${p}.x.y`);
      const self = collect(a, `${p}.x.y`);
      await b.flush();

      a.publish(`${p}.x.y`, 'one');
      expect(self.got).toEqual([]);
      a.publish(`${p}.x`, 'shorter');
      a.publish(`${p}.x.y.z`, 'longer');
      a.publish(`${p}.x.yy`, 'other token');
      a.publish(`${p}.x.y`, new TextEncoder().encode('two'));
      await settle(a, b);

      expect(other.got).toEqual(['one', 'two']);
      expect(other.subjects).toEqual([`${p}.x.y`, `${p}.x.y`]);
      expect(self.got).toEqual(['one', 'two']);
    });

    it('matches `*` to exactly one token and `>` to one or more trailing tokens', async () => {
      const [a, b] = await openTwo();
      const patterns = ['a.*', 'a.>', '*.c', 'a.*.c', 'a', '>', 'a.b'];
      const subs = new Map(patterns.map((pat) => [pat, collect(b, `${p}.${pat}`)]));
      await b.flush();
      for (const s of ['a', 'a.b', 'a.c', 'x.c', 'a.b.c', 'a.b.d', 'a.b.c.d']) a.publish(`${p}.${s}`, s);
      await settle(a, b);

      const got = (pat: string) => [...subs.get(pat)!.got].sort();
      expect(got('a.*')).toEqual(['a.b', 'a.c']);
      expect(got('a.>')).toEqual(['a.b', 'a.b.c', 'a.b.c.d', 'a.b.d', 'a.c']);
      expect(got('*.c')).toEqual(['a.c', 'x.c']);
      expect(got('a.*.c')).toEqual(['a.b.c']);
      expect(got('a')).toEqual(['a']);
      expect(got('>')).toEqual(['a', 'a.b', 'a.b.c', 'a.b.c.d', 'a.b.d', 'a.c', 'x.c']);
      expect(got('a.b')).toEqual(['a.b']);
      // The handler sees the subject that was published, not the pattern.
      expect([...subs.get('a.*')!.subjects].sort()).toEqual([`${p}.a.b`, `${p}.a.c`]);
    });

    it('gives each message to one member of each queue group and to every plain subscriber', async () => {
      const [a, b] = await openTwo();
      const c = await open();
      const g1 = [
        collect(b, `${p}.q`, { queue: 'g1' }),
        collect(b, `${p}.q`, { queue: 'g1' }),
        collect(c, `${p}.*`, { queue: 'g1' }),
      ];
      const g2 = [collect(b, `${p}.q`, { queue: 'g2' }), collect(c, `${p}.q`, { queue: 'g2' })];
      const plain = [collect(b, `${p}.q`), collect(c, `${p}.>`)];
      await b.flush();
      await c.flush();

      const sent = Array.from({ length: 300 }, (_, i) => String(i).padStart(3, '0'));
      for (const s of sent) a.publish(`${p}.q`, s);
      await settle(a, b);
      await c.flush();

      for (const group of [g1, g2]) {
        expect(group.flatMap((m) => m.got).sort()).toEqual(sent);
        // Spread at random: one member taking all 300 would be a bug, not bad luck.
        expect(group.filter((m) => m.got.length > 0).length).toBeGreaterThan(1);
      }
      for (const m of plain) expect(m.got).toEqual(sent);
    });

    it('keeps each publisher’s order: 1000 messages from each of two publishers', async () => {
      const [a, b] = await openTwo();
      const rx = await open();
      const { got } = collect(rx, `${p}.order`);
      await rx.flush();

      const n = 1000;
      for (let i = 0; i < n; i++) {
        a.publish(`${p}.order`, `a:${i}`);
        b.publish(`${p}.order`, `b:${i}`);
      }
      await waitFor(() => got.length >= 2 * n, 10_000, `${2 * n} ordered messages`);

      const expected = (who: string) => Array.from({ length: n }, (_, i) => `${who}:${i}`);
      expect(got.filter((s) => s.startsWith('a:'))).toEqual(expected('a'));
      expect(got.filter((s) => s.startsWith('b:'))).toEqual(expected('b'));
      expect(got).toHaveLength(2 * n);
    });

    it('answers a request with the reply, each concurrent request with its own', async () => {
      const [client, server] = await openTwo();
      server.subscribe(`${p}.echo`, (m) => m.respond(`re:${toText(m.data)}`));
      let plainRespond: boolean | undefined;
      server.subscribe(`${p}.plain`, (m) => {
        plainRespond = m.respond('nobody asked');
      });
      await server.flush();

      expect(toText(await client.request(`${p}.echo`, 'hi', 5_000))).toBe('re:hi');
      const many = await Promise.all(
        Array.from({ length: 50 }, (_, i) => client.request(`${p}.echo`, String(i), 5_000)),
      );
      expect(many.map(toText)).toEqual(Array.from({ length: 50 }, (_, i) => `re:${i}`));

      client.publish(`${p}.plain`, 'x');
      await waitFor(() => plainRespond !== undefined, 5_000, 'the plain message');
      expect(plainRespond).toBe(false);
    });

    it('resolves a request with the first reply, and a queue group answers it once', async () => {
      const [client, server] = await openTwo();
      const calls: string[] = [];
      const answer = (who: string) => (m: BusMsg) => {
        calls.push(who);
        m.respond(who);
      };
      server.subscribe(`${p}.svc`, answer('q1'), { queue: 'workers' });
      server.subscribe(`${p}.svc`, answer('q2'), { queue: 'workers' });
      await server.flush();

      for (let i = 0; i < 20; i++) {
        const reply = toText(await client.request(`${p}.svc`, 'x', 5_000));
        expect(['q1', 'q2']).toContain(reply);
      }
      await settle(client, server);
      expect(calls).toHaveLength(20);

      // Two plain responders both answer; the first answer wins and the second is dropped.
      server.subscribe(`${p}.both`, answer('p1'));
      server.subscribe(`${p}.both`, answer('p2'));
      await server.flush();
      expect(['p1', 'p2']).toContain(toText(await client.request(`${p}.both`, 'x', 5_000)));
    });

    it('rejects a request with no_responders at once when nobody is subscribed', async () => {
      const [client, server] = await openTwo();
      const started = Date.now();
      await expect(client.request(`${p}.nobody`, 'x', 10_000)).rejects.toEqual(busError('no_responders'));
      expect(Date.now() - started).toBeLessThan(2_000);

      // Also once the only responder has gone.
      const sub = server.subscribe(`${p}.gone`, (m) => m.respond('here'));
      await server.flush();
      expect(toText(await client.request(`${p}.gone`, 'x', 5_000))).toBe('here');
      sub.unsubscribe();
      await server.flush();
      await expect(client.request(`${p}.gone`, 'x', 10_000)).rejects.toEqual(busError('no_responders'));
    });

    it('a publish with a reply subject: the responder sees it and answers there; nobody subscribed brings a noResponders notice', async () => {
      const [client, server] = await openTwo();
      const replies: BusMsg[] = [];
      const seen: { data: string; reply: string | undefined; noResponders: boolean }[] = [];
      client.subscribe(`${p}.rep.*`, (m) => void replies.push(m));
      server.subscribe(`${p}.work`, (m) => {
        seen.push({ data: toText(m.data), reply: m.reply, noResponders: m.noResponders });
        m.respond(`done:${toText(m.data)}`);
      });
      await Promise.all([client.flush(), server.flush()]);
      client.publish(`${p}.work`, 'a', `${p}.rep.1`);
      client.publish(`${p}.idle`, 'b', `${p}.rep.2`);
      client.publish(`${p}.work`, 'plain');
      await waitFor(() => replies.length === 2, 5_000, 'the reply and the notice');
      await settle(client, server);
      expect(seen).toEqual([
        { data: 'a', reply: `${p}.rep.1`, noResponders: false },
        { data: 'plain', reply: undefined, noResponders: false },
      ]);
      const bySubject = Object.fromEntries(
        replies.map((m) => [m.subject, { data: toText(m.data), noResponders: m.noResponders, reply: m.reply }]),
      );
      expect(bySubject).toEqual({
        [`${p}.rep.1`]: { data: 'done:a', noResponders: false, reply: undefined },
        [`${p}.rep.2`]: { data: '', noResponders: true, reply: undefined },
      });
    });

    it('rejects a request with timeout when the responder stays silent', async () => {
      const [client, server] = await openTwo();
      let seen = 0;
      server.subscribe(`${p}.silent`, () => {
        seen++;
      });
      await server.flush();
      const started = Date.now();
      await expect(client.request(`${p}.silent`, 'x', 200)).rejects.toEqual(busError('timeout'));
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
      expect(seen).toBe(1);
    });

    it('stops delivery on unsubscribe, including messages already on their way', async () => {
      const [a, b] = await openTwo();
      const first = collect(b, `${p}.u`);
      const stays = collect(b, `${p}.u`);
      await b.flush();
      a.publish(`${p}.u`, '1');
      await settle(a, b);
      expect(first.got).toEqual(['1']);

      first.sub.unsubscribe();
      first.sub.unsubscribe(); // a second call is harmless
      a.publish(`${p}.u`, '2');
      await settle(a, b);
      expect(first.got).toEqual(['1']);
      expect(stays.got).toEqual(['1', '2']);

      // Published, then unsubscribed before the message could arrive: it is dropped, while the witness
      // shows that it was routed.
      const witness = collect(b, `${p}.f`);
      await b.flush();
      const inFlight = collect(a, `${p}.f`);
      a.publish(`${p}.f`, 'x');
      inFlight.sub.unsubscribe();
      await settle(a, b);
      expect(witness.got).toEqual(['x']);
      expect(inFlight.got).toEqual([]);
    });

    it('drain delivers what was already routed to the subscription, then nothing more', async () => {
      const [a, b] = await openTwo();
      const witness = collect(b, `${p}.d`);
      await b.flush();
      const draining = collect(a, `${p}.d`);
      await a.flush();
      // Routed to both before the drain starts: where unsubscribe drops it, drain delivers it.
      for (let i = 0; i < 50; i++) a.publish(`${p}.d`, String(i));
      await draining.sub.drain();
      const all = Array.from({ length: 50 }, (_, i) => String(i));
      expect(draining.got).toEqual(all);
      a.publish(`${p}.d`, 'after');
      await settle(a, b);
      expect(witness.got).toEqual([...all, 'after']);
      expect(draining.got).toEqual(all);
    });

    it('makes a subscription visible to another connection once flush resolves', async () => {
      const [a, b] = await openTwo();
      const { got } = collect(b, `${p}.v`);
      await b.flush();
      a.publish(`${p}.v`, 'seen');
      await a.flush();
      await waitFor(() => got.length === 1, 5_000, 'the message published after the flush');
      expect(got).toEqual(['seen']);
    });

    it('keeps a subscription alive when its handler throws, and reports the error', async () => {
      const errors: Array<[unknown, string]> = [];
      const a = await open();
      const b = await open({ onError: (err, subject) => errors.push([err, subject]) });
      const handled: string[] = [];
      b.subscribe(`${p}.boom`, (m) => {
        handled.push(toText(m.data));
        if (toText(m.data) === 'throw') throw new Error('handler failed');
      });
      await b.flush();
      a.publish(`${p}.boom`, 'throw');
      a.publish(`${p}.boom`, 'after');
      await waitFor(() => handled.length === 2, 5_000, 'the message after the throw');
      expect(handled).toEqual(['throw', 'after']);
      expect(errors).toEqual([[expect.objectContaining({ message: 'handler failed' }), `${p}.boom`]]);
    });

    it('close drains what was published, fails pending requests, then refuses every call with closed', async () => {
      const [a, b] = await openTwo();
      const { got } = collect(b, `${p}.c`);
      b.subscribe(`${p}.silent`, () => {});
      await b.flush();
      const sent = Array.from({ length: 200 }, (_, i) => String(i));
      for (const s of sent) a.publish(`${p}.c`, s);
      const pending = a.request(`${p}.silent`, 'x', 20_000);
      pending.catch(() => {}); // asserted below, after close

      const closing = a.close();
      expect(a.connected).toBe(false);
      expect(thrownBy(() => a.publish(`${p}.c`, 'late'))).toEqual(busError('closed'));
      await closing;

      await waitFor(() => got.length >= sent.length, 5_000, 'publishes made before close');
      expect(got).toEqual(sent);
      await expect(pending).rejects.toEqual(busError('closed'));
      expect(a.connected).toBe(false);
      expect(thrownBy(() => a.publish(`${p}.c`, 'late'))).toEqual(busError('closed'));
      expect(thrownBy(() => a.subscribe(`${p}.c`, () => {}))).toEqual(busError('closed'));
      await expect(a.request(`${p}.silent`, 'x', 1_000)).rejects.toEqual(busError('closed'));
      await expect(a.flush()).rejects.toEqual(busError('closed'));
      await expect(a.close()).resolves.toBeUndefined();
      expect(b.connected).toBe(true);
    });
  });
}

busContract('MemoryBus', memoryBusBackend);
busContract('NatsBus', () => natsBusBackend('bus-contract'));

describe('MemoryBus on its own', () => {
  it('works without a shared hub and refuses subjects NATS would refuse', async () => {
    const bus = new MemoryBus();
    try {
      const sub: Subscription = bus.subscribe('svc.>', (m) => m.respond(`re:${m.subject}`));
      expect(toText(await bus.request('svc.a.b', 'x', 1_000))).toBe('re:svc.a.b');
      sub.unsubscribe();
      await expect(bus.request('svc.a.b', 'x', 1_000)).rejects.toEqual(busError('no_responders'));

      for (const bad of ['', 'a..b', '.a', 'a.', 'a b', 'a.*', 'a.>'])
        expect(() => bus.publish(bad, 'x')).toThrow(/invalid subject/);
      for (const bad of ['', 'a..b', 'a.>.b', 'a b'])
        expect(() => bus.subscribe(bad, () => {})).toThrow(/invalid subject/);
    } finally {
      await bus.close();
    }
  });

  it('separate hubs do not see each other', async () => {
    const one = new MemoryHub().connect();
    const two = new MemoryHub().connect();
    try {
      two.subscribe('x', (m) => m.respond('two'));
      await expect(one.request('x', 'x', 1_000)).rejects.toEqual(busError('no_responders'));
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });
});

describe('NatsBus on a server that goes away', () => {
  it('reconnects after a server restart: connected goes false then true, subscriptions work again', async () => {
    const server = await startNats();
    const buses: Bus[] = [];
    try {
      const p = uniquePrefix();
      const events: NatsStatus[] = [];
      const bus = new NatsBus(await connectNats([server.url], 'restart', (s) => events.push(s)));
      const peer = new NatsBus(await connectNats([server.url], 'restart-peer'));
      buses.push(bus, peer);
      const { got } = collect(bus, `${p}.r`);
      bus.subscribe(`${p}.echo`, (m) => m.respond('pong'));
      await bus.flush();
      peer.publish(`${p}.r`, 'before');
      await waitFor(() => got.length === 1, 5_000, 'the message before the restart');
      expect(bus.connected).toBe(true);

      await server.stop();
      await waitFor(() => !bus.connected && !peer.connected, 5_000, 'both buses to notice the server is gone');
      await server.restart();
      await waitFor(() => bus.connected && peer.connected, 10_000, 'both buses to reconnect');

      // The client resubscribes on reconnect; the flush proves the server has the subscriptions again.
      await bus.flush();
      peer.publish(`${p}.r`, 'after');
      await waitFor(() => got.length === 2, 5_000, 'the message after the restart');
      expect(got).toEqual(['before', 'after']);
      expect(toText(await peer.request(`${p}.echo`, 'ping', 5_000))).toBe('pong');

      const transitions = events.map((e) => e.connected).filter((c, i, all) => i === 0 || c !== all[i - 1]);
      expect(transitions).toEqual([true, false, true]);
      expect(events.find((e) => !e.connected)?.detail).toMatch(/disconnected/);
    } finally {
      await Promise.all(buses.map((b) => b.close()));
      await server.stop();
    }
  });

  it('fails the first connect with a clear error naming the server', async () => {
    const server = await startNats();
    await server.stop();
    await expect(connectNats([server.url], 'nobody-home')).rejects.toThrow(`cannot connect to NATS at ${server.url}`);
  });
});
