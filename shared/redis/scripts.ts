// The Lua scripts of rtgw, read from ./lua/*.lua (copied next to the compiled file by the build) and
// registered with defineCommand once per client, so calls go out as EVALSHA with an EVAL fallback.
// A line `-- @include <name>` is replaced by ./lua/include/<name>.lua, so helpers several scripts
// share (the dead-letter entry format) are written once; each script still runs as one EVAL.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** Script name -> number of KEYS (`any`: as many as the call gives). Each file's header lists its KEYS, ARGV and return. */
const SCRIPTS = {
  append: 'any',
  read: 2,
  'lease-acquire': 2,
  'lease-renew': 1,
  'lease-release': 1,
  'router-heartbeat': 1,
  'live-routers': 1,
  'dm-append': 9,
  'dm-ack': 5,
  'dm-pending': 7,
  'dm-claim': 5,
  'dm-park': 5,
  'dm-stats': 1,
  'dm-take-dead': 1,
} as const;

export type ScriptName = keyof typeof SCRIPTS;
export type ScriptArg = string | number;
export type Scripts = { readonly [K in ScriptName]: (keys: string[], args: ScriptArg[]) => Promise<unknown> };

const INCLUDE = /^-- @include ([a-z-]+)$/gm;

function loadLua(name: string): string {
  const url = new URL(`./lua/${name}.lua`, import.meta.url);
  let text: string;
  try {
    text = readFileSync(url, 'utf8');
  } catch (e) {
    throw new Error(`Lua script ${name} not found at ${url.pathname}: the build must copy shared/redis/lua`, {
      cause: e,
    });
  }
  // Includes hold no includes of their own: one level, so no cycle is possible.
  return name.startsWith('include/') ? text : text.replace(INCLUDE, (_, inc: string) => loadLua(`include/${inc}`));
}

// Read at import, so a build without the lua folder fails at startup rather than at the first request.
const sources = Object.fromEntries(Object.keys(SCRIPTS).map((n) => [n, loadLua(n)])) as Record<ScriptName, string>;

const commandName = (name: ScriptName) => 'rtgw_' + name.replace(/-/g, '_');
const registered = new WeakMap<Redis, Scripts>();

/** The scripts bound to a client; defineCommand runs once per client however often this is called. */
export function scripts(redis: Redis): Scripts {
  const known = registered.get(redis);
  if (known) return known;
  const bound = {} as Record<ScriptName, Scripts[ScriptName]>;
  for (const [name, numberOfKeys] of Object.entries(SCRIPTS) as [ScriptName, number | 'any'][]) {
    const cmd = commandName(name);
    // Without numberOfKeys, ioredis takes the key count as the first argument of each call.
    redis.defineCommand(cmd, numberOfKeys === 'any' ? { lua: sources[name] } : { lua: sources[name], numberOfKeys });
    const fn = (redis as unknown as Record<string, (...a: ScriptArg[]) => Promise<unknown>>)[cmd]!;
    bound[name] = (keys, args) => {
      if (numberOfKeys === 'any') return fn.call(redis, keys.length, ...keys, ...args);
      if (keys.length !== numberOfKeys) throw new Error(`${name}.lua takes ${numberOfKeys} keys, got ${keys.length}`);
      return fn.call(redis, ...keys, ...args);
    };
  }
  registered.set(redis, bound);
  return bound;
}
