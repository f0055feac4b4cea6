// Baseline for the fan-out bench: bare uWebSockets.js in one process, the least a WebSocket fan-out
// can cost. Members send `{"t":"join"...}` and are subscribed to the topic named by `?room=` in the
// upgrade URL; any other text frame is published as is to that topic with app.publish (no parsing,
// no auth, no sequencing, no history). GET /readyz answers 200 once listening.
//   node bench/dist/bare-uws.js --port <p> [--host 127.0.0.1] [--publish deferred|inline] [--nats nats://...]
// `--nats URL` is the "bare uWS behind one NATS hop" baseline: a frame goes out to NATS on the room's
// subject and app.publish runs when it comes back from the process's own subscription, as rtgw's gateway
// publishes what arrives from NATS; there is nothing else in between.
// `--publish inline` calls app.publish inside the publisher's message callback, as the uWS examples do;
// `deferred` (the default) copies the frame and publishes from setImmediate right after the callback,
// which is where rtgw's gateway publishes from too (a NATS read, outside any uWS callback). Measured in
// this bench (README.md): deferred sustains about 1.4-2x the rate of inline at the same CPU per delivery
// at low rates, so the baseline uses it.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import uWS from 'uWebSockets.js';

interface Data {
  topic: string;
}

const JOIN = Buffer.from('{"t":"join"');
const OK = '{"t":"ok","id":1}';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

// The same guard as the gateway's: uWS falls back to a slow pure-JS copy when its addon fails to load.
const nativeApp = (uWS as unknown as { App?: unknown }).App;
if (typeof nativeApp !== 'function' || !/\{\s*\[native code\]\s*\}/.test(Function.prototype.toString.call(nativeApp))) {
  process.stderr.write('bare-uws: the uWebSockets.js native addon is not loaded\n');
  process.exit(1);
}

const host = arg('--host', '127.0.0.1');
const deferred = arg('--publish', 'deferred') === 'deferred';
let queue: [string, Buffer][] = [];
const flush = () => {
  const q = queue;
  queue = [];
  for (const [topic, m] of q) app.publish(topic, m, false);
};
const port = Number(arg('--port', '0'));
const app = uWS.App();
const natsUrl = arg('--nats', '');
const SUBJECT = 'bare.r.';
let nc: NatsConnection | undefined;
if (natsUrl) {
  nc = await connect({ servers: natsUrl, name: 'bare-uws', noAsyncTraces: true });
  nc.subscribe(SUBJECT + '>', {
    callback: (err, m) => {
      if (!err) app.publish(m.subject.slice(SUBJECT.length), m.data, false);
    },
  });
  await nc.flush();
}

app.ws<Data>('/ws', {
  // Same limits as the rtgw gateway: a slow member is closed, never silently skipped.
  maxPayloadLength: 1024 * 1024,
  maxBackpressure: 4 * 1024 * 1024,
  closeOnBackpressureLimit: 1,
  idleTimeout: 60,
  sendPingsAutomatically: true,
  compression: uWS.DISABLED,
  upgrade(res, req, context) {
    const topic = 'r:' + (new URLSearchParams(req.getQuery() ?? '').get('room') ?? 'bench');
    res.upgrade<Data>(
      { topic },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  message(ws, ab) {
    const d = ws.getUserData();
    if (ab.byteLength >= JOIN.length && Buffer.from(ab, 0, JOIN.length).equals(JOIN)) {
      ws.subscribe(d.topic);
      ws.send(OK);
      return;
    }
    // nats.js keeps a reference until its flush, after this callback: hand it a copy.
    if (nc) return void nc.publish(SUBJECT + d.topic, new Uint8Array(ab.slice(0)));
    if (!deferred) return void app.publish(d.topic, ab, false);
    // The ArrayBuffer dies with this callback: copy it, publish after the callback returns.
    if (queue.length === 0) setImmediate(flush);
    queue.push([d.topic, Buffer.from(ab.slice(0))]);
  },
});
app.get('/readyz', (res) => {
  res.end('{"ready":true}');
});
app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end('not found');
});

let listenSocket: uWS.us_listen_socket | undefined;
app.listen(host, port, (s) => {
  if (!s) {
    process.stderr.write(`bare-uws: cannot listen on ${host}:${port}\n`);
    process.exit(1);
  }
  listenSocket = s;
  process.stdout.write(JSON.stringify({ listening: uWS.us_socket_local_port(s as unknown as uWS.us_socket) }) + '\n');
});

const stop = () => {
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  void (nc ? nc.close() : Promise.resolve()).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
