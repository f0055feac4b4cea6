// The Lua scripts of rtgw, read from ./lua/*.lua (copied next to the compiled file by the build) and
// registered with defineCommand once per client, so calls go out as EVALSHA with an EVAL fallback.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** Script name -> number of KEYS. Each file's header lists its KEYS, ARGV and return. */
const SCRIPTS = {
  append: 4,
  read: 2,
  'lease-acquire': 2,
  'lease-renew': 1,
  'lease-release': 1,
  'router-heartbeat': 1,
  'live-routers': 1,
} as const;

export type ScriptName = keyof typeof SCRIPTS;
export type ScriptArg = string | number;
export type Scripts = { readonly [K in ScriptName]: (keys: string[], args: ScriptArg[]) => Promise<unknown> };

function loadLua(name: string): string {
  const url = new URL(`./lua/${name}.lua`, import.meta.url);
  try {
    return readFileSync(url, 'utf8');
  } catch (e) {
    throw new Error(`Lua script ${name} not found at ${url.pathname}: the build must copy shared/redis/lua`, {
      cause: e,
    });
  }
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
  for (const [name, numberOfKeys] of Object.entries(SCRIPTS) as [ScriptName, number][]) {
    const cmd = commandName(name);
    redis.defineCommand(cmd, { lua: sources[name], numberOfKeys });
    const fn = (redis as unknown as Record<string, (...a: ScriptArg[]) => Promise<unknown>>)[cmd]!;
    bound[name] = (keys, args) => {
      if (keys.length !== numberOfKeys) throw new Error(`${name}.lua takes ${numberOfKeys} keys, got ${keys.length}`);
      return fn.call(redis, ...keys, ...args);
    };
  }
  registered.set(redis, bound);
  return bound;
}
