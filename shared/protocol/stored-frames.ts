// The `msg` and `dm` frames as the store builds them, once, when a message is sequenced: clients get
// these bytes as they were stored. Redis builds them in shared/redis/lua/include/frames.lua, the memory
// engine with the builders here, and test/contract/stored-frames.test.ts holds both to the same bytes.
// The layout is fixed so that two things are read without parsing JSON:
//   {"t":"msg","room":R,"seq":N,"from":F,"data":D[,"mid":M],"ts":T}
//   {"t":"dm","seq":N,"from":F,"data":D[,"mid":M],"ts":T}
// `ts` comes last (routers read it for delivery latency, the scripts to trim history and expire direct
// messages), and a dm's `seq` comes right after its type (gateways order a user's stream by it).

const midPart = (mid: string | undefined) => (mid === undefined ? '' : `,"mid":${JSON.stringify(mid)}`);

/** A room message; `dataJson` is the data's JSON text as it came. */
export const msgFrame = (
  room: string,
  seq: number,
  from: string,
  dataJson: string,
  mid: string | undefined,
  ts: number,
): string =>
  `{"t":"msg","room":${JSON.stringify(room)},"seq":${seq},"from":${JSON.stringify(from)},"data":${dataJson}${midPart(mid)},"ts":${ts}}`;

/** A direct message; `dataJson` is the data's JSON text as it came. */
export const dmFrame = (seq: number, from: string, dataJson: string, mid: string | undefined, ts: number): string =>
  `{"t":"dm","seq":${seq},"from":${JSON.stringify(from)},"data":${dataJson}${midPart(mid)},"ts":${ts}}`;

/** The `ts` of a stored frame, read from its end. */
export const frameTs = (frame: string): number => Number(frame.slice(frame.lastIndexOf('"ts":') + 5, -1));

const DM_SEQ_AT = '{"t":"dm","seq":'.length;

/** The `seq` of a stored dm frame's bytes, read after its type; -1 when the bytes are not such a frame. */
export function dmFrameSeq(frame: Uint8Array): number {
  let n = 0;
  let i = DM_SEQ_AT;
  for (; i < frame.length && frame[i]! >= 48 && frame[i]! <= 57; i++) n = n * 10 + frame[i]! - 48;
  return i === DM_SEQ_AT ? -1 : n;
}
