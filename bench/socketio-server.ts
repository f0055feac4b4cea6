// Baseline for the bench: one Socket.IO 4.8 node with @socket.io/redis-adapter (ioredis), WebSocket
// transport only, no compression. Events: `join` (room, ack) joins the room; `pub` ({room, data}, ack?)
// emits `msg` {room, data, ts} to the whole room across every node (`io.to(room).emit`), then acks.
// GET /readyz answers 200 once listening and subscribed to Redis.
//   node bench/dist/socketio-server.js --port <p> --redis redis://127.0.0.1:<port> [--host 127.0.0.1]
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : def;
  if (v === undefined) throw new Error(`socketio-server: ${name} is required`);
  return v;
}

const host = arg('--host', '127.0.0.1');
const port = Number(arg('--port'));
const redisUrl = arg('--redis');
let ready = false;

const http = createServer((req, res) => {
  // socket.io answers its own path before this handler runs.
  if (req.url === '/readyz') {
    res.writeHead(ready ? 200 : 503).end(JSON.stringify({ ready }));
    return;
  }
  res.writeHead(404).end('not found');
});

const pub = new Redis(redisUrl);
const sub = pub.duplicate();
for (const c of [pub, sub]) c.on('error', (e: Error) => process.stderr.write(`socketio-server: redis: ${e.message}\n`));
const connected = (c: Redis) => (c.status === 'ready' ? Promise.resolve() : new Promise<void>((r) => c.once('ready', () => r())));

const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  adapter: createAdapter(pub, sub),
});

io.on('connection', (socket) => {
  socket.on('join', (room: unknown, ack?: (r: unknown) => void) => {
    if (typeof room !== 'string') return ack?.({ error: 'bad room' });
    void socket.join(room);
    ack?.({ ok: true });
  });
  socket.on('pub', (m: { room?: unknown; data?: unknown }, ack?: (r: unknown) => void) => {
    if (typeof m?.room !== 'string') return ack?.({ error: 'bad room' });
    io.to(m.room).emit('msg', { room: m.room, data: m.data, ts: Date.now() });
    ack?.({ ok: true });
  });
});

await Promise.all([connected(pub), connected(sub)]);
http.listen(port, host, () => {
  ready = true;
  process.stdout.write(JSON.stringify({ listening: port }) + '\n');
});

const stop = () => {
  void io.close();
  pub.disconnect();
  sub.disconnect();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
