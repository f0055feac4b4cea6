// The Socket.IO baseline's events, on any Server (socketio-server.ts's with the redis adapter, or a bare
// one in lean-client-check.ts): `join` (room, ack) joins the room; `pub` ({room, data}, ack?) emits `msg`
// {room, data, ts} to the whole room across every node (`io.to(room).emit`, the sender included), then acks.
import type { Server } from 'socket.io';

export function serveRooms(io: Server): void {
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
}
