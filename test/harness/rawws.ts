// A raw RFC 6455 client over node:net, for tests that must send what no WebSocket library will: frames
// built byte by byte (bad masks, reserved opcodes and RSV bits, lying length fields, fragments out of
// order), truncated frames, plain garbage. It performs the HTTP upgrade itself, then parses the server's
// frames (text, binary, close, ping, pong) and records how the connection ended: a close frame (code and
// reason) or a bare TCP close. Loopback only; every wait has a deadline.
import { randomBytes } from 'node:crypto';
import { connect as connectTcp, type Socket } from 'node:net';

export const Op = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

export interface FrameSpec {
  opcode: number;
  payload?: Buffer | string;
  /** FIN bit (default true). */
  fin?: boolean;
  /** RSV1..3 as a 3-bit number (default 0). */
  rsv?: number;
  /** Mask the payload (default true: client frames must be masked). */
  mask?: boolean;
  /** Masking key (default random). */
  maskKey?: Buffer;
  /** Length to declare in the header instead of the payload's own (a lie: shorter or longer). */
  declaredLength?: bigint | number;
}

/** The bytes of one client frame. The length encoding is the shortest for the declared length. */
export function encodeFrame(spec: FrameSpec): Buffer {
  const payload =
    typeof spec.payload === 'string' ? Buffer.from(spec.payload, 'utf8') : (spec.payload ?? Buffer.alloc(0));
  const len = BigInt(spec.declaredLength ?? payload.length);
  const fin = spec.fin ?? true;
  const rsv = (spec.rsv ?? 0) & 7;
  const mask = spec.mask ?? true;
  const b0 = (fin ? 0x80 : 0) | (rsv << 4) | (spec.opcode & 0x0f);
  const maskBit = mask ? 0x80 : 0;
  let head: Buffer;
  if (len < 126n) head = Buffer.from([b0, maskBit | Number(len)]);
  else if (len < 65536n) {
    head = Buffer.alloc(4);
    head[0] = b0;
    head[1] = maskBit | 126;
    head.writeUInt16BE(Number(len), 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = maskBit | 127;
    head.writeBigUInt64BE(BigInt.asUintN(64, len), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  const key = spec.maskKey ?? randomBytes(4);
  const body = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([head, key.subarray(0, 4), body]);
}

/** A close frame payload: 2-byte code then the reason. */
export function closePayload(code: number, reason = ''): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code & 0xffff, 0);
  return Buffer.concat([b, Buffer.from(reason, 'utf8')]);
}

export interface ServerFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Incremental parser of server frames. A frame the server must never send (masked) is still parsed. */
export class FrameParser {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): ServerFrame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: ServerFrame[] = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        const big = b.readBigUInt64BE(2);
        if (big > 64n * 1024n * 1024n) throw new Error(`server frame declares ${big} bytes`);
        len = Number(big);
        off = 10;
      }
      const keyOff = off;
      if (masked) off += 4;
      if (b.length < off + len) break;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] = payload[i]! ^ b[keyOff + (i & 3)]!;
      out.push({ fin: (b[0]! & 0x80) !== 0, rsv: (b[0]! >> 4) & 7, opcode: b[0]! & 0x0f, masked, payload });
      this.buf = b.subarray(off + len);
    }
    return out;
  }
}

/** How a raw connection ended. `closeFrame` is the server's close frame, when it sent one. */
export interface RawEnd {
  closeFrame?: { code: number | undefined; reason: string; payloadLength: number };
  /** True when the TCP connection ended (always, once `ended` resolves). */
  tcpClosed: true;
  /** Who ended it first: the server (close frame or FIN/RST), or this client (`destroy`). */
  by: 'server' | 'client';
}

export interface RawOpenOptions {
  /** Query string token (the browser way). */
  token?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  path?: string;
  timeoutMs?: number;
  /** Bytes written in the same TCP write as the upgrade request (frames that arrive before `welcome`). */
  pipeline?: Buffer;
}

export class RawWs {
  /** Every server frame in order (control frames included). */
  readonly frames: ServerFrame[] = [];
  readonly ended: Promise<RawEnd>;
  private parser = new FrameParser();
  private waiters = new Set<() => void>();
  private endInfo: RawEnd | undefined;
  private closeFrame: RawEnd['closeFrame'];
  private destroyedByClient = false;
  /** A server frame that could not be parsed (a bug either side). */
  parseError: Error | undefined;

  private constructor(
    readonly socket: Socket,
    readonly status: number,
    readonly responseHead: string,
    rest: Buffer,
  ) {
    let resolveEnd!: (e: RawEnd) => void;
    this.ended = new Promise((r) => (resolveEnd = r));
    const onData = (chunk: Buffer) => {
      if (this.parseError) return;
      try {
        for (const f of this.parser.push(chunk)) {
          this.frames.push(f);
          if (f.opcode === Op.Close && this.closeFrame === undefined) {
            this.closeFrame = {
              code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : undefined,
              reason: f.payload.subarray(2).toString('utf8'),
              payloadLength: f.payload.length,
            };
          }
        }
      } catch (e) {
        this.parseError = e as Error;
      }
      this.wake();
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      this.endInfo = {
        closeFrame: this.closeFrame,
        tcpClosed: true,
        by: this.destroyedByClient && this.closeFrame === undefined ? 'client' : 'server',
      };
      resolveEnd(this.endInfo);
      this.wake();
    });
    if (rest.length > 0) onData(rest);
  }

  /**
   * TCP connect to 127.0.0.1:`port`, send the upgrade request, resolve once the response head is in.
   * A refused upgrade (not 101) still resolves: check `status`.
   */
  static open(port: number, opts: RawOpenOptions = {}): Promise<RawWs> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    return new Promise<RawWs>((resolve, reject) => {
      const socket = connectTcp({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`raw upgrade: no response within ${timeoutMs} ms`));
      }, timeoutMs);
      const fail = (e: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(e);
      };
      socket.once('error', fail);
      socket.once('connect', () => {
        const path =
          (opts.path ?? '/ws') + (opts.token !== undefined ? `?token=${encodeURIComponent(opts.token)}` : '');
        const headers: Record<string, string> = {
          Host: `127.0.0.1:${port}`,
          Upgrade: 'websocket',
          Connection: 'Upgrade',
          'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
          'Sec-WebSocket-Version': '13',
          ...opts.headers,
        };
        const request = Buffer.from(
          `GET ${path} HTTP/1.1\r\n${Object.entries(headers)
            .map(([k, v]) => `${k}: ${v}\r\n`)
            .join('')}\r\n`,
          'latin1',
        );
        socket.write(opts.pipeline ? Buffer.concat([request, opts.pipeline]) : request);
      });
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > 16_384) fail(new Error('raw upgrade: response head too long'));
          return;
        }
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', fail);
        const text = head.subarray(0, end).toString('latin1');
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
        resolve(new RawWs(socket, status, text, head.subarray(end + 4)));
      };
      socket.on('data', onData);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  get isEnded(): boolean {
    return this.endInfo !== undefined;
  }

  /** Raw bytes, as they are. */
  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  frame(spec: FrameSpec): void {
    this.write(encodeFrame(spec));
  }

  text(s: string | Buffer): void {
    this.frame({ opcode: Op.Text, payload: s });
  }

  json(v: unknown): void {
    this.text(JSON.stringify(v));
  }

  /** Text frames parsed as JSON (unparseable ones as `{ t: '<unparsed>', raw }`). */
  texts(): Record<string, any>[] {
    return this.frames
      .filter((f) => f.opcode === Op.Text)
      .map((f) => {
        const raw = f.payload.toString('utf8');
        try {
          return JSON.parse(raw) as Record<string, any>;
        } catch {
          return { t: '<unparsed>', raw };
        }
      });
  }

  /**
   * First server frame at index >= `from` matching `pred`; resolves undefined after `timeoutMs` or once
   * the connection ended without one.
   */
  next(pred: (f: ServerFrame) => boolean, timeoutMs = 3000, from = 0): Promise<ServerFrame | undefined> {
    return new Promise((resolve) => {
      let i = from;
      const check = (): boolean => {
        for (; i < this.frames.length; i++) {
          if (pred(this.frames[i]!)) {
            done();
            resolve(this.frames[i]);
            return true;
          }
        }
        if (this.endInfo !== undefined || this.parseError) {
          done();
          resolve(undefined);
          return true;
        }
        return false;
      };
      const waiter = () => void check();
      const timer = setTimeout(() => {
        done();
        resolve(undefined);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      if (!check()) this.waiters.add(waiter);
    });
  }

  /** The next text frame parsed as JSON that matches `pred`. */
  async nextJson(
    pred: (v: Record<string, any>) => boolean,
    timeoutMs = 3000,
    from = 0,
  ): Promise<Record<string, any> | undefined> {
    const f = await this.next(
      (fr) => {
        if (fr.opcode !== Op.Text) return false;
        try {
          return pred(JSON.parse(fr.payload.toString('utf8')) as Record<string, any>);
        } catch {
          return false;
        }
      },
      timeoutMs,
      from,
    );
    return f === undefined ? undefined : (JSON.parse(f.payload.toString('utf8')) as Record<string, any>);
  }

  /** Resolves the end if the connection ends within `timeoutMs`, else undefined (still open). */
  async endWithin(timeoutMs: number): Promise<RawEnd | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      this.ended,
      new Promise<undefined>((res) => (timer = setTimeout(() => res(undefined), timeoutMs))),
    ]);
    clearTimeout(timer);
    return r;
  }

  /** Drops the TCP connection (no close frame) and waits for it to be gone. */
  async destroy(): Promise<RawEnd> {
    if (this.endInfo === undefined) {
      this.destroyedByClient = true;
      this.socket.destroy();
    }
    return this.ended;
  }
}

/** Opens a raw connection with `token` and waits for `welcome`; throws when it does not come. */
export async function openWelcomed(port: number, token: string, timeoutMs = 5000): Promise<RawWs> {
  const ws = await RawWs.open(port, { token, timeoutMs });
  if (ws.status !== 101) {
    await ws.destroy();
    throw new Error(`raw upgrade refused: ${ws.responseHead.split('\r\n')[0]}`);
  }
  const welcome = await ws.nextJson((v) => v.t === 'welcome', timeoutMs);
  if (welcome === undefined) {
    const end = await ws.destroy();
    throw new Error(`raw connection: no welcome (end ${JSON.stringify(end)}, frames ${ws.frames.length})`);
  }
  return ws;
}
