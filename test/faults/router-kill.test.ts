// Guarantees 1 and 4 across a router crash: members on both gateways in rooms owned by both routers,
// publishers on both gateways publishing without pause, and one router SIGKILLed mid-run. Every pub
// answered ok reaches every member that stayed joined exactly once and in seq order, each room's seqs
// stay 1..N without gap or duplicate, errors are only `unavailable` (never a silent loss), the dead
// router's rooms are served again within a bound derived from the lease while the survivor's rooms
// never stop, and a member that left during the outage recovers exactly what it missed on the other
// gateway.
import { expect, it } from 'vitest';
import { uid } from '../harness/cluster.js';
import { allReady, lastSeq, metric } from '../harness/nodes.js';
import { useScenario } from '../harness/scenario.js';
import { waitFor } from '../harness/wait.js';

const LEASE_MS = 2000;
const REQUEST_TIMEOUT_MS = 5000;
/** Lease expiry plus a renewal round on the survivor, twice over, plus scheduling slack on 2 cores. */
const OUTAGE_BOUND_MS = LEASE_MS * 2 + 2000;
/** The survivor's own rooms change nothing hands: only scheduling noise may pause them. */
const SURVIVOR_BOUND_MS = 1500;

const sc = useScenario({
  gateways: 2,
  routers: 2,
  env: { RTGW_LEASE_MS: String(LEASE_MS), RTGW_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
});

it('a router killed with SIGKILL loses no ok’d message, keeps every room gapless and in order, and its rooms are served again within the lease bound', async () => {
  const [victim, survivor] = [sc.cluster.routers[0]!, sc.cluster.routers[1]!];
  const w = await sc.build({ roomsPerRouter: 3, membersPerGateway: 2, publishersPerGateway: 2 });
  const { history, rooms } = w;
  const victimRooms = w.byOwner.get(victim.nodeId!)!;
  const survivorRooms = w.byOwner.get(survivor.nodeId!)!;

  // The roamer leaves during the outage and comes back on the other gateway with since/epoch.
  const roamerUser = uid('roamer');
  const roamer = await sc.client(0, roamerUser);
  const epochs = new Map<string, string>();
  for (const room of rooms) epochs.set(room, (await roamer.ok({ t: 'join', room })).epoch as string);
  let roamerSeen = new Map<string, number>();

  // maxInFlight: above what piles up for the dead router's rooms during the outage, so no publisher stalls on them.
  const killedAt = await w.drive(
    { durationMs: 9000, everyMs: 12, maxInFlight: 200, answerTimeoutMs: REQUEST_TIMEOUT_MS + 5000 },
    {
      atMs: 2500,
      strike: async () => {
        // Kill once the victim has demonstrably been sequencing this run's traffic.
        expect(
          history.oks().filter((p) => victimRooms.includes(p.room)).length,
          'ok’d pubs in the victim’s rooms before the kill',
        ).toBeGreaterThan(20);
        expect(await metric(victim, 'rtgw_messages_sequenced_total')).toBeGreaterThan(0);
        const at = Date.now();
        victim.kill('SIGKILL');
        await victim.exited;
        // During the outage the roamer goes away, remembering where it was in each room.
        roamerSeen = new Map(rooms.map((room) => [room, lastSeq(roamer.frames, room)]));
        await roamer.close();
        return at;
      },
    },
  );
  // What it got before leaving was gapless and in order too.
  const roamerProblems = rooms.flatMap((room) =>
    history.receiverProblems('roamer', roamer.frames, { room, expected: [] }),
  );

  // Service came back: per room, the longest stretch without an ok stays under the bound; the
  // survivor's rooms were not interrupted; the victim's rooms answered pubs sent after the takeover.
  const silence = new Map(rooms.map((room) => [room, history.longestSilence(w.startedAt, w.endedAt, [room]).ms]));
  for (const room of victimRooms) {
    expect(silence.get(room), `${room} (victim's) went ${silence.get(room)} ms without an ok`).toBeLessThan(
      OUTAGE_BOUND_MS,
    );
    expect(
      history.oks(room).some((p) => p.sentAtMs > killedAt! + LEASE_MS),
      `${room} served after the takeover`,
    ).toBe(true);
  }
  for (const room of survivorRooms) {
    expect(silence.get(room), `${room} (survivor's) went ${silence.get(room)} ms without an ok`).toBeLessThan(
      SURVIVOR_BOUND_MS,
    );
  }
  await waitFor(() => allReady(sc.cluster), 5000, 'the surviving nodes to be ready');

  // The standard oracles; all copies (members, the roamer's first part and the history) agree on each seq's message.
  await w.verify({
    extraProblems: [
      ...roamerProblems,
      ...rooms.flatMap((room) =>
        history.agreementProblems(room, [
          { who: 'roamer', frames: roamer.frames },
          ...w.members.map((m) => ({ who: m.name, frames: m.client.frames })),
        ]),
      ),
    ],
    report: () => [
      'router-kill:',
      {
        outcomes: history.summary(),
        unansweredButStored: w.unansweredButStored(),
        longestSilenceMs: Object.fromEntries(
          [...silence].map(([room, ms]) => [`${room} (${victimRooms.includes(room) ? 'victim' : 'survivor'})`, ms]),
        ),
      },
    ],
  });

  // The roamer, back on the OTHER gateway with since/epoch, gets exactly what it missed, then live.
  const back = await sc.client(1, roamerUser);
  for (const room of rooms) {
    const since = roamerSeen.get(room)!;
    const from = back.frames.length;
    const j = await back.ok({ t: 'join', room, since, epoch: epochs.get(room) });
    expect(j, room).toMatchObject({ room, recovered: true, epoch: epochs.get(room), seq: history.maxOkSeq(room) });
    const head = j.seq as number;
    if (head > since) await back.waitForMsgs(room, head - since, 10_000);
    const replay = back.frames.slice(from);
    expect(history.receiverProblems('roamer after reconnect', replay, { room, after: since, through: head })).toEqual(
      [],
    );
    expect(
      history.agreementProblems(room, [
        { who: 'roamer after reconnect', frames: replay },
        ...w.members.map((m) => ({ who: m.name, frames: m.client.frames })),
      ]),
    ).toEqual([]);
  }
  const live = await history.pubUntilOk(w.publishers[2]!.client, 'live', rooms[0]!, 5000);
  await back.next(
    (f) => f.t === 'msg' && f.room === rooms[0] && f.mid === live.mid,
    5000,
    0,
    'the live message after the replay',
  );
  expect(back.msgs(rooms[0]!).filter((f) => f.mid === live.mid)).toHaveLength(1);
}, 90_000);
