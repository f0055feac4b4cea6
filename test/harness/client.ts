// A lean black-box test client over `ws`: records every frame it receives, matches request answers by
// `id`, and reports refused upgrades (HTTP status) and closes (code, reason) as values tests can assert.
import WebSocket from 'ws';

/** A received frame: a parsed JSON object (anything unparseable is kept as `{ t: '<unparsed>', raw }`). */
export type Frame = { t: string; [k: string]: any };
export type Predicate = (f: Frame) => boolean;

export interface ConnectOptions {
  /** Sent as `Authorization: Bearer <token>` (use `query: { token }` for the browser way). */
  token?: string;
  /** `Origin` header; absent means none is sent (a non-browser client). */
  origin?: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  /** Deadline for the upgrade (and for `connect`, the welcome frame). Default 5000 ms. */
  timeoutMs?: number;
}

export interface Closed {
  code: number;
  reason: string;
}

/** Why a connection attempt did not end in a `welcome`. */
export class ConnectError extends Error {
  override name = 'ConnectError';
  constructor(
    message: string,
    /** HTTP status when the upgrade was refused. */
    readonly status?: number,
    /** Close code when the socket was opened and then closed before a welcome. */
    readonly code?: number,
    readonly reason?: string,
    /** Every frame received before the close (the contract wants none for auth failures). */
    readonly frames: Frame[] = [],
    /** Body of a refused upgrade. */
    readonly body?: string,
  ) {
    super(message);
  }
}

export class TestClient {
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  /** Resolves once, when the socket is closed; never rejects. Code 1006 when it died without a close frame. */
  readonly closed: Promise<Closed>;
  /** Resolves with the welcome frame; rejects if the socket closes before one. */
  readonly welcomed: Promise<Frame>;
  /** Answers (`ok`/`err`) seen per request id, to catch a request answered twice. */
  readonly answers = new Map<number, number>();
  /** The first socket error (protocol violation, reset, ...), if any. */
  error: Error | undefined;
  private nextId = 0;
  private waiters = new Set<() => void>();
  private closeInfo: Closed | undefined;
  private welcomeFrame: Frame | undefined;

  constructor(readonly ws: WebSocket) {
    let resolveClosed!: (c: Closed) => void;
    this.closed = new Promise((r) => (resolveClosed = r));
    ws.on('message', (data, isBinary) => {
      const text = Array.isArray(data) ? Buffer.concat(data).toString() : Buffer.from(data as ArrayBuffer).toString();
      let f: Frame;
      try {
        const v: unknown = JSON.parse(text);
        f = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Frame) : { t: '<unparsed>', raw: text };
      } catch {
        f = { t: '<unparsed>', raw: text, binary: isBinary };
      }
      if ((f.t === 'ok' || f.t === 'err') && typeof f.id === 'number') {
        this.answers.set(f.id, (this.answers.get(f.id) ?? 0) + 1);
      }
      if (f.t === 'welcome' && this.welcomeFrame === undefined) this.welcomeFrame = f;
      this.frames.push(f);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() };
      resolveClosed(this.closeInfo);
      this.wake();
    });
    // Errors are followed by 'close'; without a listener ws would throw them. Kept for failure messages.
    ws.on('error', (err) => {
      this.error ??= err;
    });
    this.welcomed = this.next((f) => f.t === 'welcome', 1e9, 0, 'welcome');
    this.welcomed.catch(() => undefined);
  }

  /** The welcome frame (throws before it arrived). */
  get welcome(): Frame {
    if (this.welcomeFrame === undefined) throw new Error('no welcome frame yet');
    return this.welcomeFrame;
  }
  get conn(): string {
    return this.welcome.conn as string;
  }
  get user(): string {
    return this.welcome.user as string;
  }
  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }
  /** Close code and reason once closed. */
  get closeState(): Closed | undefined {
    return this.closeInfo;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Sends a raw text (string) or binary (Buffer) frame. */
  send(raw: string | Buffer): void {
    this.ws.send(raw, { binary: Buffer.isBuffer(raw) });
  }

  /** Sends a frame object as JSON, as is. */
  sendJson(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  /**
   * Sends `frame` with a fresh `id` (unless it has one) and resolves with the `ok` or `err` answering it.
   * Rejects when the socket closes first or after `timeoutMs`.
   */
  async request(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Frame> {
    const id = typeof frame.id === 'number' ? frame.id : ++this.nextId;
    const from = this.frames.length;
    this.sendJson({ ...frame, id });
    return this.next(
      (f) => (f.t === 'ok' || f.t === 'err') && f.id === id,
      timeoutMs,
      from,
      `answer to ${JSON.stringify(frame).slice(0, 200)}`,
    );
  }

  /** Like `request`, but fails unless the answer is `ok`. */
  async ok(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Frame> {
    const res = await this.request(frame, timeoutMs);
    if (res.t !== 'ok')
      throw new Error(`expected ok for ${JSON.stringify(frame).slice(0, 200)}, got ${JSON.stringify(res)}`);
    return res;
  }

  /** Sends a request frame with an id, without waiting; returns the id. */
  fire(frame: Record<string, unknown>): number {
    const id = ++this.nextId;
    this.sendJson({ ...frame, id });
    return id;
  }

  /**
   * First frame at index >= `from` (default 0: every frame received so far counts) matching `pred`.
   * Rejects after `timeoutMs` or when the socket closes without one, naming `what` and the last frames.
   */
  next(pred: Predicate, timeoutMs = 5000, from = 0, what = 'frame'): Promise<Frame> {
    return new Promise<Frame>((resolve, reject) => {
      let i = from;
      const check = (): boolean => {
        for (; i < this.frames.length; i++) {
          const f = this.frames[i]!;
          if (pred(f)) {
            done();
            resolve(f);
            return true;
          }
        }
        if (this.closeInfo !== undefined) {
          done();
          reject(new Error(`closed (${this.describeClose()}) before ${what}; last frames: ${this.lastFrames()}`));
          return true;
        }
        return false;
      };
      const waiter = () => void check();
      const timer = setTimeout(
        () => {
          done();
          reject(new Error(`no ${what} within ${timeoutMs} ms; last frames: ${this.lastFrames()}`));
        },
        Math.min(timeoutMs, 2 ** 31 - 1),
      );
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      if (!check()) this.waiters.add(waiter);
    });
  }

  /** `msg` frames received for `room`, in arrival order. */
  msgs(room: string): Frame[] {
    return this.frames.filter((f) => f.t === 'msg' && f.room === room);
  }

  /** Resolves with the `msg` frames of `room` once at least `n` arrived. */
  async waitForMsgs(room: string, n: number, timeoutMs = 5000): Promise<Frame[]> {
    let count = 0;
    await this.next(
      (f) => f.t === 'msg' && f.room === room && ++count >= n,
      timeoutMs,
      0,
      `${n} msgs in ${room} (had ${this.msgs(room).length})`,
    );
    return this.msgs(room);
  }

  /** Frames of type `t` (optionally only those matching `pred`). */
  of(t: string, pred: Predicate = () => true): Frame[] {
    return this.frames.filter((f) => f.t === t && pred(f));
  }

  /** Round trip through the connection: `ping` then wait for the next `pong`. */
  async ping(timeoutMs = 5000): Promise<void> {
    const from = this.frames.length;
    this.sendJson({ t: 'ping' });
    await this.next((f) => f.t === 'pong', timeoutMs, from, 'pong');
  }

  /** `code reason`, plus the socket error the client saw, if any. */
  describeClose(): string {
    const c = this.closeInfo;
    const base = c === undefined ? 'open' : `${c.code} ${c.reason}`.trim();
    return this.error ? `${base}; client error: ${this.error.message}` : base;
  }

  lastFrames(n = 8): string {
    return JSON.stringify(this.frames.slice(-n)).slice(0, 1500);
  }

  /** Closes (default 1000) and waits for the close; terminates if the server does not answer in 3 s. */
  async close(code = 1000, reason = ''): Promise<Closed> {
    if (this.closeInfo !== undefined) return this.closeInfo;
    try {
      if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
      else this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    const timer = setTimeout(() => this.ws.terminate(), 3000);
    try {
      return await this.closed;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drops the TCP connection without a close frame. */
  terminate(): void {
    this.ws.terminate();
  }
}

function buildUrl(url: string, query?: Record<string, string>): string {
  if (!query) return url;
  const u = new URL(url);
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  return u.toString();
}

/**
 * Opens the WebSocket and resolves as soon as the upgrade succeeded, before any frame: for tests that
 * send bad bytes or watch what a refused token gets. Rejects with a ConnectError carrying `status` when
 * the upgrade is refused.
 */
export function connectRaw(url: string, opts: ConnectOptions = {}): Promise<TestClient> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.Authorization = `Bearer ${opts.token}`;
  const ws = new WebSocket(buildUrl(url, opts.query), {
    headers,
    ...(opts.origin !== undefined ? { origin: opts.origin } : {}),
    handshakeTimeout: opts.timeoutMs ?? 5000,
    perMessageDeflate: false,
  });
  // Created before the upgrade so no frame sent right after it is missed.
  const client = new TestClient(ws);
  return new Promise<TestClient>((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 4096) body += c;
      });
      const finish = () => {
        reject(
          new ConnectError(`upgrade refused: HTTP ${res.statusCode}`, res.statusCode, undefined, undefined, [], body),
        );
        req.destroy();
        ws.terminate();
      };
      res.once('end', finish);
      res.once('error', finish);
      res.once('close', finish);
    });
    void client.closed.then((c) =>
      reject(
        new ConnectError(
          `closed before open: ${client.describeClose()}`,
          undefined,
          c.code,
          c.reason,
          client.frames.slice(),
        ),
      ),
    );
  });
}

/**
 * Connects and resolves after the `welcome` frame. Rejects with a ConnectError carrying the HTTP
 * `status` (refused upgrade) or the close `code`/`reason` and the frames received before the close.
 */
export async function connect(url: string, opts: ConnectOptions = {}): Promise<TestClient> {
  const client = await connectRaw(url, opts);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const outcome = await Promise.race([
    client.welcomed.then(
      () => 'welcome' as const,
      () => 'closed' as const,
    ),
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref()),
  ]);
  if (outcome === 'welcome') return client;
  if (outcome === 'timeout') {
    client.terminate();
    throw new ConnectError(
      `no welcome within ${timeoutMs} ms; frames: ${client.lastFrames()}`,
      undefined,
      undefined,
      undefined,
      client.frames.slice(),
    );
  }
  const c = await client.closed;
  throw new ConnectError(
    `closed before welcome: ${client.describeClose()}`,
    undefined,
    c.code,
    c.reason,
    client.frames.slice(),
  );
}

/** Tracks clients so an afterEach can close whatever a test left open. */
export class ClientPool {
  private clients = new Set<TestClient>();
  async connect(url: string, opts: ConnectOptions = {}): Promise<TestClient> {
    const c = await connect(url, opts);
    this.clients.add(c);
    return c;
  }
  async connectRaw(url: string, opts: ConnectOptions = {}): Promise<TestClient> {
    const c = await connectRaw(url, opts);
    this.clients.add(c);
    return c;
  }
  /** Connects and returns the rejection (ConnectError) the attempt ended with; fails if it succeeded. */
  async refused(url: string, opts: ConnectOptions = {}): Promise<ConnectError> {
    try {
      const c = await connect(url, opts);
      this.clients.add(c);
    } catch (err) {
      if (err instanceof ConnectError) return err;
      throw err;
    }
    throw new Error('connection was accepted (welcome received) but should have been refused');
  }
  async closeAll(): Promise<void> {
    const all = [...this.clients];
    this.clients.clear();
    await Promise.all(all.map((c) => c.close().catch(() => undefined)));
  }
}

/** The `seq` of each frame, in order. */
export const seqs = (fs: readonly Frame[]): number[] => fs.map((f) => f.seq as number);

/** The integers `from`..`to`, both included: an expected run of seqs. */
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
