// Self-check of the lean client (run: node bench/dist/lean-client-check.js; `npm run bench` runs it first).
// 1. Frames of every length class (7/16/64-bit), fragmented messages with a ping between fragments,
//    a server close: fed to the parser split at every byte boundary, and in random chunks.
// 2. Against a real `ws` server (which refuses unmasked client frames): handshake with the bearer
//    header, masked sends, pongs to pings, counting; a refused upgrade rejects without a close.
// 3. The Socket.IO wire (wire.ts) through BenchConn against a real Socket.IO server with the baseline's
//    events: handshake, join and pub acks, data counted by its event name, Engine.IO pings answered.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { WebSocketServer } from 'ws';
import { openConn, type BenchConn } from './conn.js';
import { LeanWs } from './lean-client.js';
import { serveRooms } from './socketio-rooms.js';
import { sleep } from './util.js';
import { stampText, type Stamp } from './wire.js';

function serverFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const h = Buffer.alloc(2 + ext);
  h[0] = (fin ? 0x80 : 0) | opcode;
  if (ext === 0) h[1] = len;
  else if (ext === 2) {
    h[1] = 126;
    h.writeUInt16BE(len, 2);
  } else {
    h[1] = 127;
    h.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([h, payload]);
}

const msg = (n: number, pad: number) => Buffer.from(`{"t":"msg","seq":${n},"data":"${'x'.repeat(pad)}"}`);

function fail(why: string): never {
  process.stderr.write(`lean-client check FAILED: ${why}\n`);
  process.exit(1);
}

/** A LeanWs whose socket only records writes, so the parser can be fed by hand. */
function detached(wantData: boolean) {
  const writes: Buffer[] = [];
  const got = { data: [] as string[], other: [] as string[], close: undefined as number | undefined };
  const ws = new LeanWs({
    host: '',
    port: 0,
    path: '/',
    wantData,
    onData: (p) => got.data.push(p.toString()),
    onOther: (p) => got.other.push(p.toString()),
    onClose: (c) => (got.close = c),
  });
  const internals = ws as unknown as { socket: unknown; open: boolean; feed(b: Buffer): void };
  internals.socket = { write: (b: Buffer) => writes.push(Buffer.from(b)), end: () => {}, destroy: () => {} };
  internals.open = true;
  return { ws, writes, got, feed: (b: Buffer) => internals.feed(b) };
}

function parserCheck(): void {
  const payloads = [msg(1, 0), msg(2, 200), msg(3, 70_000), Buffer.from('{"t":"ok","id":1}')];
  const fragA = Buffer.from('{"t":"msg","seq":4,');
  const fragB = Buffer.from('"data":"fragmented"}');
  const stream = Buffer.concat([
    serverFrame(1, payloads[0]!),
    serverFrame(1, payloads[1]!),
    serverFrame(1, payloads[2]!),
    serverFrame(1, payloads[3]!),
    serverFrame(1, fragA.subarray(0, 3), false), // the type arrives in the next fragments, split between its letters
    serverFrame(9, Buffer.from('hi')),
    serverFrame(0, fragA.subarray(3, 7), false),
    serverFrame(0, fragA.subarray(7), false),
    serverFrame(0, fragB, true),
    serverFrame(1, Buffer.from('{"t":"pub","data":1}')),
    serverFrame(1, Buffer.from('{"t":"pong"}')), // `p` like pub, but not data
    serverFrame(8, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65])),
  ]);
  const expectData = [
    payloads[0]!,
    payloads[1]!,
    payloads[2]!,
    Buffer.concat([fragA, fragB]),
    Buffer.from('{"t":"pub","data":1}'),
  ].map(String);
  const check = (label: string, chunks: Buffer[], wantData: boolean) => {
    const d = detached(wantData);
    for (const c of chunks) d.feed(c);
    if (d.ws.data !== 5) fail(`${label}: counted ${d.ws.data} data messages, expected 5`);
    if (d.ws.other !== 2 || d.got.other.join() !== '{"t":"ok","id":1},{"t":"pong"}')
      fail(`${label}: other messages ${JSON.stringify(d.got.other)}`);
    if (wantData && JSON.stringify(d.got.data) !== JSON.stringify(expectData)) fail(`${label}: payloads differ`);
    if (!wantData && d.got.data.length !== 0) fail(`${label}: a member collected payloads`);
    if (d.ws.pings !== 1) fail(`${label}: ${d.ws.pings} pings`);
    if (d.got.close !== 1000) fail(`${label}: close code ${d.got.close}`);
    // Answers: a pong echoing "hi", then the close echo; both masked.
    const [pong, close] = d.writes;
    if (!pong || pong[0] !== 0x8a || (pong[1]! & 0x80) === 0 || (pong[1]! & 0x7f) !== 2) fail(`${label}: bad pong`);
    const key = pong.subarray(2, 6);
    if (String(Buffer.from(pong.subarray(6).map((b, i) => b ^ key[i % 4]!))) !== 'hi') fail(`${label}: pong payload`);
    if (!close || close[0] !== 0x88) fail(`${label}: no close echo`);
  };
  check('whole', [stream], true);
  check('whole, member', [stream], false);
  // Split at every boundary in the first 400 bytes (the headers and the small frames), and near the end.
  for (let cut = 1; cut < stream.length; cut += cut < 400 || cut > stream.length - 400 ? 1 : 997) {
    check(`split at ${cut}`, [stream.subarray(0, cut), stream.subarray(cut)], cut % 2 === 0);
  }
  check(
    'one byte at a time',
    [...stream.subarray(0, 300)].map((b) => Buffer.from([b])).concat([stream.subarray(300)]),
    true,
  );
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let round = 0; round < 200; round++) {
    const chunks: Buffer[] = [];
    for (let at = 0; at < stream.length;) {
      const n = 1 + Math.floor(rnd() * (rnd() < 0.5 ? 16 : 20_000));
      chunks.push(stream.subarray(at, at + n));
      at += n;
    }
    check(`random chunks ${round}`, chunks, round % 2 === 0);
  }
}

async function wsCheck(): Promise<void> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  let auth = '';
  const received: string[] = [];
  let pongs = 0;
  wss.on('connection', (s, req) => {
    auth = req.headers.authorization ?? '';
    s.on('pong', () => pongs++);
    s.on('message', (m) => {
      received.push(m.toString());
      s.ping('p');
      s.send('{"t":"ok","id":1}');
      s.send('{"t":"pong"}');
      for (let i = 0; i < 100; i++) s.send(`{"t":"msg","seq":${i},"data":"${'y'.repeat(i * 700)}"}`);
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as { port: number }).port;
  const ws = new LeanWs({ host: '127.0.0.1', port, path: '/ws?room=x', token: 'abc.def.ghi' });
  await ws.connect();
  ws.sendText('{"t":"join","id":1,"room":"x"}');
  ws.sendText('z'.repeat(70_000)); // 64-bit length, masked
  const deadline = Date.now() + 5000;
  while ((ws.data < 200 || pongs < 2) && Date.now() < deadline) await sleep(10);
  if (auth !== 'Bearer abc.def.ghi') fail(`authorization header: ${auth}`);
  if (received[0] !== '{"t":"join","id":1,"room":"x"}' || received[1]?.length !== 70_000)
    fail('ws server did not get the masked frames');
  if (ws.data !== 200 || ws.other !== 4) fail(`counted ${ws.data} data / ${ws.other} other from ws, expected 200 / 4`);
  if (pongs < 2) fail(`ws server got ${pongs} pongs`);
  ws.close();
  // A refused upgrade rejects connect() and is not reported as a close: the storm would reconnect it.
  let closes = 0;
  const refused = new LeanWs({ host: '127.0.0.1', port, path: '/nope', onClose: () => closes++ });
  wss.options.verifyClient = () => false;
  const err = await refused.connect().then(
    () => undefined,
    (e: Error) => e.message,
  );
  await sleep(100);
  if (!err?.startsWith('upgrade refused')) fail(`refused upgrade: connect gave ${err ?? 'success'}`);
  if (closes !== 0) fail(`refused upgrade reported ${closes} close(s)`);
  wss.close();
  http.close();
}

async function socketIoCheck(): Promise<void> {
  const http = createServer();
  // Pings every 50 ms with a 50 ms timeout: a client that does not answer `2` with `3` is dropped within the check.
  const io = new Server(http, { transports: ['websocket'], serveClient: false, pingInterval: 50, pingTimeout: 50 });
  serveRooms(io);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as { port: number }).port;
  const stamps: Stamp[] = [];
  const open = (onStamp?: (s: Stamp) => void): BenchConn =>
    openConn('lean', { host: '127.0.0.1', port, wire: 'socketio', room: 'r', onStamp });
  const [member, probe, publisher] = [open(), open((s) => stamps.push(s)), open()];
  for (const c of [member, probe, publisher]) await c.connect();
  await member.join('r');
  await probe.join('r');
  await sleep(300); // several ping intervals
  publisher.publish(
    'r',
    [0, 1, 2].map((i) => stampText(7, i, 1.5)),
    false,
  );
  const deadline = Date.now() + 5000;
  while ((member.data < 3 || probe.data < 3 || publisher.oks < 3) && Date.now() < deadline) await sleep(10);
  if (!member.open || !probe.open || !publisher.open) fail('socket.io: a connection was closed (pings not answered?)');
  if (member.data !== 3 || probe.data !== 3 || publisher.data !== 0)
    fail(`socket.io: counted ${member.data}/${probe.data}/${publisher.data} messages, expected 3/3/0`);
  if (publisher.oks !== 3 || publisher.errs !== 0) fail(`socket.io: ${publisher.oks} acks, ${publisher.errs} errors`);
  if (JSON.stringify(stamps.map((s) => [s.s, s.i, s.ts])) !== '[[7,0,1.5],[7,1,1.5],[7,2,1.5]]')
    fail(`socket.io: stamps ${JSON.stringify(stamps)}`);
  for (const c of [member, probe, publisher]) c.destroy();
  await io.close();
}

parserCheck();
await wsCheck();
await socketIoCheck();
process.stdout.write('lean-client check passed\n');
