// The `msg` and `dm` frames the stores build (shared/protocol/stored-frames.ts): on memory and on Redis
// (whose scripts build them in lua/include/frames.lua) every frame is the builders' bytes exactly, a
// valid server frame as the SDK reads it, and the two fields read without parsing (`ts` from the end, a
// dm's `seq` after its type) are the frame's own.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { decodeServerFrame } from '../../shared/protocol/server-codec.js';
import { dmFrame, dmFrameSeq, frameTs, msgFrame } from '../../shared/protocol/stored-frames.js';
import type { Lease, Stores } from '../../shared/store/ports.js';
import { forEachBackend } from './backends.js';

const SLOT = 3;

async function lease(stores: Stores): Promise<Lease> {
  const l = await stores.leases.acquire(SLOT, 'router-1', 60_000);
  if (!l) throw new Error('slot already held');
  return l;
}

const name = fc.string({ unit: fc.constantFrom(...'abcXYZ019_-:@.'), minLength: 1, maxLength: 16 });
/** Data as a client may send it: any JSON value, in any layout. */
const dataText = fc
  .tuple(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(undefined, 0, 2, '\t'))
  .map(([v, indent]) => JSON.stringify(v, null, indent as never));
const from = fc.oneof(name, fc.string({ maxLength: 12 }));
const mid = fc.option(fc.string({ minLength: 1, maxLength: 64 }), { nil: undefined });

forEachBackend('stored frames', (backend) => {
  it('room messages: the builder’s bytes, a valid msg frame, ts read from the end', async () => {
    const { stores } = backend().make();
    const l = await lease(stores);
    await fc.assert(
      fc.asyncProperty(name, from, dataText, mid, async (room, sender, data, m) => {
        const r = await stores.log.append(
          { slot: SLOT, room, from: sender, dataJson: data, mid: m, dedupBy: m === undefined ? undefined : sender },
          l,
        );
        const decoded = decodeServerFrame(r.frame);
        expect('frame' in decoded && decoded.frame).toMatchObject({
          t: 'msg',
          room,
          seq: r.seq,
          from: sender,
          data: JSON.parse(data),
        });
        const ts = frameTs(r.frame);
        expect('frame' in decoded && decoded.frame.t === 'msg' && decoded.frame.ts).toBe(ts);
        expect(r.frame).toBe(msgFrame(room, r.seq, sender, data, m, ts));
      }),
      { seed: 5, numRuns: 150 },
    );
  });

  it('direct messages: the builder’s bytes, a valid dm frame, seq read after the type and ts from the end', async () => {
    const { stores } = backend().make({ inboxMaxMessages: 1000, inboxMaxPerSender: 1000 });
    const l = await lease(stores);
    await fc.assert(
      fc.asyncProperty(from, dataText, mid, async (sender, data, m) => {
        const r = await stores.inbox.append(
          {
            slot: SLOT,
            to: 'bob',
            from: sender,
            dataJson: data,
            mid: m,
            dedupBy: m === undefined ? undefined : sender,
            sender: 'u',
          },
          l,
        );
        if (r.duplicate) return;
        const decoded = decodeServerFrame(r.frame);
        expect('frame' in decoded && decoded.frame).toMatchObject({
          t: 'dm',
          seq: r.seq,
          from: sender,
          data: JSON.parse(data),
        });
        expect(dmFrameSeq(Buffer.from(r.frame))).toBe(r.seq);
        expect(r.frame).toBe(dmFrame(r.seq, sender, data, m, frameTs(r.frame)));
        await stores.inbox.ack(SLOT, 'bob', r.seq);
      }),
      { seed: 6, numRuns: 150 },
    );
  });
});
