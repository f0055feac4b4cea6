// A lean WebSocket client on node:net for load generation: it does the upgrade handshake itself and
// parses only frame headers, so thousands of members fit in one process. It counts the server's data
// messages by two bytes at a fixed offset (`{"t":"ms...` by default; wire.ts says where for each server)
// without decoding them; a probe asks for whole payloads instead. It answers pings, masks what it sends (RFC 6455 5.3) and never compresses.
import { createHash, createHmac, randomBytes, randomFillSync } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
/** rtgw's and bare uWS's frames carry their type at byte 6 of `{"t":"<type>"...`; two letters tell data apart. */
const TYPE_AT = 6;
/** `ms`g from rtgw, or `pu`b relayed as is by bare uWS; never `po`ng, `ok`, `we`lcome, `er`r... */
export const isDataType = (a: number, b: number) => (a === 0x6d && b === 0x73) || (a === 0x70 && b === 0x75);
const MAX_HANDSHAKE_BYTES = 16 * 1024;
/** A server message this large is a bug in the bench, not load: refuse it rather than buffer it. */
const MAX_COLLECT_BYTES = 16 * 1024 * 1024;

/** HS256 JWT with node:crypto (the gateway verifies with jose; signing needs nothing more). */
export function signHs256(secret: string, claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64(claims);
  return head + '.' + createHmac('sha256', secret).update(head).digest('base64url');
}

// Mask keys come from a pooled CSPRNG buffer: unpredictable as the RFC asks, without a syscall per frame.
const maskPool = Buffer.allocUnsafe(4096);
let maskAt = maskPool.length;
function nextMask(): number {
  if (maskAt + 4 > maskPool.length) {
    randomFillSync(maskPool);
    maskAt = 0;
  }
  const m = maskPool.readUInt32BE(maskAt);
  maskAt += 4;
  return m;
}

/** One client-to-server frame, masked. */
export function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const out = Buffer.allocUnsafe(2 + ext + 4 + len);
  out[0] = 0x80 | opcode;
  if (ext === 0) out[1] = 0x80 | len;
  else if (ext === 2) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    out.writeUInt32BE(len >>> 0, 6);
  }
  const m = nextMask();
  const at = 2 + ext;
  out.writeUInt32BE(m, at);
  const k0 = m >>> 24,
    k1 = (m >>> 16) & 0xff,
    k2 = (m >>> 8) & 0xff,
    k3 = m & 0xff;
  const p = at + 4;
  let i = 0;
  for (; i + 3 < len; i += 4) {
    out[p + i] = payload[i]! ^ k0;
    out[p + i + 1] = payload[i + 1]! ^ k1;
    out[p + i + 2] = payload[i + 2]! ^ k2;
    out[p + i + 3] = payload[i + 3]! ^ k3;
  }
  for (; i < len; i++) out[p + i] = payload[i]! ^ (i % 4 === 0 ? k0 : i % 4 === 1 ? k1 : i % 4 === 2 ? k2 : k3);
  return out;
}

export interface LeanOptions {
  host: string;
  port: number;
  /** Request target, e.g. `/ws?room=r1`. */
  path: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Deliver every data message's payload (the probe). Members leave it off and only count. */
  wantData?: boolean;
  /** Each data message (`msg`/`pub`) when wantData is set. */
  onData?: (payload: Buffer) => void;
  /** Every other text message (welcome, ok, err, pong...), always whole. */
  onOther?: (payload: Buffer) => void;
  onClose?: (code: number | undefined, reason: string) => void;
  connectTimeoutMs?: number;
  /** Where the two bytes that tell data from other messages are (default TYPE_AT), and the test on them (default isDataType). */
  typeAt?: number;
  isData?: (a: number, b: number) => boolean;
}

export class LeanWs {
  /** Complete data messages received (`msg` from rtgw, `pub` relayed by bare uWS). */
  data = 0;
  /** Complete other messages received. */
  other = 0;
  pings = 0;
  open = false;
  closeCode: number | undefined;
  private socket!: Socket;
  // Frame parser state. Header bytes may arrive split across reads: they are gathered in `hdr`.
  private readonly hdr = Buffer.allocUnsafe(14);
  private hdrHave = 0;
  private inPayload = false;
  private remaining = 0;
  private opcode = 0;
  private fin = false;
  private done = false;
  // Message state: a data message may be fragmented, with control frames in between.
  private inMessage = false;
  private msgPos = 0;
  /** Bytes TYPE_AT and TYPE_AT + 1 of the current message, 0 until seen. */
  private t0 = 0;
  private t1 = 0;
  private collecting = true;
  private parts: Buffer[] = [];
  private partsLen = 0;
  private ctrl: Buffer[] = [];
  private readonly typeAt: number;
  private readonly isData: (a: number, b: number) => boolean;

  /** Called once when the connection ends after the handshake; may be replaced at any time. */
  onClose: LeanOptions['onClose'];

  constructor(private readonly o: LeanOptions) {
    this.onClose = o.onClose;
    this.typeAt = o.typeAt ?? TYPE_AT;
    this.isData = o.isData ?? isDataType;
  }

  /** Connects and completes the upgrade; rejects on anything but a valid 101. */
  connect(): Promise<void> {
    const o = this.o;
    return new Promise<void>((resolve, reject) => {
      const key = randomBytes(16).toString('base64');
      const expect = createHash('sha1')
        .update(key + GUID)
        .digest('base64');
      const s = connect({ host: o.host, port: o.port, noDelay: true });
      this.socket = s;
      let head: Buffer | undefined = Buffer.alloc(0);
      let settled = false;
      let upgraded = false;
      const timer = setTimeout(() => fail(new Error('handshake timeout')), o.connectTimeoutMs ?? 10_000);
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        s.destroy();
        reject(e);
      };
      s.once('connect', () => {
        s.write(
          `GET ${o.path} HTTP/1.1\r\nHost: ${o.host}:${o.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
            (o.token ? `Authorization: Bearer ${o.token}\r\n` : '') +
            '\r\n',
        );
      });
      // Until the upgrade succeeded, an end is the handshake failing (connect rejects), not a close:
      // onClose is only for connections that were open.
      s.on('error', (e) => {
        if (!upgraded) return fail(e);
        this.closed(undefined, e.message);
      });
      s.on('close', () => {
        if (!upgraded) return fail(new Error('closed during handshake'));
        this.closed(this.closeCode, 'socket closed');
      });
      s.on('data', (chunk: Buffer) => {
        if (head === undefined) return this.feed(chunk);
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > MAX_HANDSHAKE_BYTES) fail(new Error('handshake response too large'));
          return;
        }
        const text = head.subarray(0, end).toString('latin1');
        const rest = head.subarray(end + 4);
        head = undefined;
        const lines = text.split('\r\n');
        if (!/^HTTP\/1\.1 101\b/.test(lines[0] ?? ''))
          return fail(new Error(`upgrade refused: ${lines[0]} ${rest.toString('utf8').slice(0, 200)}`));
        const accept = lines
          .find((l) => /^sec-websocket-accept:/i.test(l))
          ?.split(':')[1]
          ?.trim();
        if (accept !== expect) return fail(new Error('bad Sec-WebSocket-Accept'));
        settled = upgraded = true;
        clearTimeout(timer);
        this.open = true;
        resolve();
        if (rest.length > 0) this.feed(rest);
      });
    });
  }

  sendText(text: string | Buffer): void {
    if (this.open) this.socket.write(encodeFrame(OP_TEXT, typeof text === 'string' ? Buffer.from(text) : text));
  }

  /** Several already-encoded frames in one write. */
  writeRaw(frames: Buffer): void {
    if (this.open) this.socket.write(frames);
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  close(code = 1000): void {
    if (!this.open) return void this.socket?.destroy();
    const p = Buffer.allocUnsafe(2);
    p.writeUInt16BE(code);
    this.socket.write(encodeFrame(OP_CLOSE, p));
    this.socket.end();
    this.open = false;
  }

  destroy(): void {
    this.open = false;
    this.socket?.destroy();
  }

  /** Reports the end once, whichever comes first: a close frame, a protocol error, the socket closing. */
  private closed(code: number | undefined, reason: string): void {
    if (this.done) return;
    this.done = true;
    this.open = false;
    this.onClose?.(code, reason);
  }

  private protocolError(why: string): void {
    this.closeCode = 1002;
    this.closed(1002, why);
    this.socket.destroy();
  }

  /** Parses server frames from one TCP read; anything may be split at any byte. */
  private feed(b: Buffer): void {
    let off = 0;
    const n = b.length;
    while (off < n && !this.done) {
      if (!this.inPayload) {
        // Header: 2 bytes, then 0/2/8 length bytes (server frames carry no mask). Whole in this read
        // (the usual case) it is parsed in place; otherwise its bytes are gathered in `hdr` first.
        let src = b;
        let at = off;
        if (this.hdrHave === 0 && n - off >= 2 && n - off >= headerLen(b[off + 1]!)) {
          off += headerLen(b[off + 1]!);
        } else {
          if (this.hdrHave < 2) {
            const take = Math.min(2 - this.hdrHave, n - off);
            b.copy(this.hdr, this.hdrHave, off, off + take);
            this.hdrHave += take;
            off += take;
            if (this.hdrHave < 2) return;
          }
          const full = headerLen(this.hdr[1]!);
          const take = Math.min(full - this.hdrHave, n - off);
          b.copy(this.hdr, this.hdrHave, off, off + take);
          this.hdrHave += take;
          off += take;
          if (this.hdrHave < full) return;
          this.hdrHave = 0;
          src = this.hdr;
          at = 0;
        }
        const b0 = src[at]!;
        const b1 = src[at + 1]!;
        if (b1 & 0x80) return this.protocolError('masked server frame');
        if (b0 & 0x70) return this.protocolError('reserved bits set (no extension was negotiated)');
        const len7 = b1 & 0x7f;
        const len =
          len7 < 126
            ? len7
            : len7 === 126
              ? src.readUInt16BE(at + 2)
              : src.readUInt32BE(at + 2) * 2 ** 32 + src.readUInt32BE(at + 6);
        if (!Number.isSafeInteger(len)) return this.protocolError('frame too long');
        this.fin = (b0 & 0x80) !== 0;
        this.opcode = b0 & 0x0f;
        this.remaining = len;
        if (this.opcode >= 0x8) {
          if (!this.fin || len > 125) return this.protocolError('bad control frame');
          this.ctrl = [];
        } else if (this.opcode === OP_TEXT || this.opcode === OP_BINARY) {
          if (this.inMessage) return this.protocolError('new message inside a fragmented one');
          this.inMessage = true;
          this.msgPos = 0;
          this.t0 = 0;
          this.t1 = 0;
          this.collecting = true;
          this.parts = [];
          this.partsLen = 0;
        } else if (this.opcode !== OP_CONT || !this.inMessage) {
          return this.protocolError(`unexpected opcode ${this.opcode}`);
        }
        this.inPayload = true;
      }
      const take = Math.min(this.remaining, n - off);
      if (take > 0) {
        if (this.opcode >= 0x8) this.ctrl.push(b.subarray(off, off + take));
        else this.payload(b, off, take);
        off += take;
        this.remaining -= take;
      }
      if (this.remaining === 0) {
        this.inPayload = false;
        this.frameEnd();
      }
    }
  }

  private payload(b: Buffer, off: number, take: number): void {
    const end = this.msgPos + take;
    const at = this.typeAt;
    if (this.msgPos <= at && end > at) this.t0 = b[off + at - this.msgPos]!;
    if (this.msgPos <= at + 1 && end > at + 1) this.t1 = b[off + at + 1 - this.msgPos]!;
    this.msgPos = end;
    if (!this.collecting) return;
    if (end > at + 1 && !this.o.wantData && this.isData(this.t0, this.t1)) {
      // A member: the type says it is a data message, the rest of it is only counted.
      this.collecting = false;
      this.parts = [];
      return;
    }
    // Node hands each read a fresh Buffer, so keeping views of it is safe.
    this.parts.push(b.subarray(off, off + take));
    this.partsLen += take;
    if (this.partsLen > MAX_COLLECT_BYTES) this.protocolError('message too large for the bench client');
  }

  private frameEnd(): void {
    switch (this.opcode) {
      case OP_PING: {
        this.pings++;
        this.socket.write(encodeFrame(OP_PONG, Buffer.concat(this.ctrl)));
        return;
      }
      case OP_PONG:
        return;
      case OP_CLOSE: {
        const p = Buffer.concat(this.ctrl);
        this.closeCode = p.length >= 2 ? p.readUInt16BE(0) : 1005;
        const reason = p.subarray(2).toString('utf8');
        if (this.open) {
          this.socket.write(encodeFrame(OP_CLOSE, p.subarray(0, 2)));
          this.socket.end();
        }
        this.closed(this.closeCode, reason);
        return;
      }
    }
    if (!this.fin) return;
    // End of a data message.
    this.inMessage = false;
    if (this.isData(this.t0, this.t1)) {
      this.data++;
      if (this.o.wantData)
        this.o.onData?.(this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLen));
    } else {
      this.other++;
      this.o.onOther?.(this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLen));
    }
    this.parts = [];
    this.partsLen = 0;
  }
}

/** Bytes of a server frame header given its second byte (no mask: servers do not mask). */
function headerLen(b1: number): number {
  const len7 = b1 & 0x7f;
  return 2 + (len7 < 126 ? 0 : len7 === 126 ? 2 : 8) + (b1 & 0x80 ? 4 : 0);
}
