// The envelope of a room stream message on NATS: one header line, then the client frame as is, so a
// gateway reads a few header bytes and hands the frame bytes to uWS without parsing or re-encoding it.
//   m <seq> <ts> <epoch> <excludeConn|->\n<msg frame>
//   p <excludeConn|->\n<joined/left frame>
// `excludeConn` is the sending connection when it did not ask for `echo`.

export type StreamEvent =
  | { kind: 'm'; seq: number; ts: number; epoch: string; exclude: string | undefined; frame: Uint8Array }
  | { kind: 'p'; exclude: string | undefined; frame: Uint8Array };

const NL = 10;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

export function encodeMessage(seq: number, ts: number, epoch: string, exclude: string | undefined, frame: string) {
  return encoder.encode(`m ${seq} ${ts} ${epoch} ${exclude ?? '-'}\n${frame}`);
}

export function encodePresence(exclude: string | undefined, frame: string) {
  return encoder.encode(`p ${exclude ?? '-'}\n${frame}`);
}

/** Undefined for anything that is not a well-formed envelope (it is dropped, never thrown on). */
export function decodeStream(data: Uint8Array): StreamEvent | undefined {
  const nl = data.indexOf(NL);
  if (nl < 0) return undefined;
  const head = decoder.decode(data.subarray(0, nl)).split(' ');
  const frame = data.subarray(nl + 1);
  const ex = (s: string | undefined) => (s === undefined || s === '-' ? undefined : s);
  if (head[0] === 'p' && head.length === 2) return { kind: 'p', exclude: ex(head[1]), frame };
  if (head[0] !== 'm' || head.length !== 5) return undefined;
  const seq = Number(head[1]);
  const ts = Number(head[2]);
  if (!Number.isSafeInteger(seq) || !Number.isFinite(ts)) return undefined;
  return { kind: 'm', seq, ts, epoch: head[3]!, exclude: ex(head[4]), frame };
}
