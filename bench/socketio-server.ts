// Baseline for the bench: one Socket.IO 4.8 node with @socket.io/redis-adapter (ioredis), WebSocket
// transport only, no compression, with the events of socketio-rooms.ts. GET /readyz answers 200 once
// listening and connected to Redis.
//   node bench/dist/socketio-server.js --port <p> --redis redis://127.0.0.1:<port> [--host 127.0.0.1]
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { serveRooms } from './socketio-rooms.js';

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
const connected = (c: Redis) =>
  c.status === 'ready' ? Promise.resolve() : new Promise<void>((r) => c.once('ready', () => r()));

const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  adapter: createAdapter(pub, sub),
});

serveRooms(io);

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
