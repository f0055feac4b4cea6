// `rtgw deadletters list [--user U] [--limit N]` and `rtgw deadletters redrive <id>...|--all`: the
// operator's view of the dead-letter lists, through the backend API (rtgw.api.deadletters/redrive).
// Its configuration (NATS URL and prefix) comes from shared/config.ts's loadBusClientConfig.
import { NatsBus, connectNats } from '../shared/bus/nats.js';
import { toJson } from '../shared/bus/bus.js';
import { subjects } from '../shared/cluster/subjects.js';
import { isErrorReply } from '../shared/cluster/messages.js';
import { ConfigError, loadBusClientConfig, type BusClientConfig } from '../shared/config.js';
import type { DeadLetter } from '../shared/store/ports.js';

export const USAGE = `usage: rtgw deadletters list [--user USER] [--limit N]
       rtgw deadletters redrive ID... | --all [--user USER]
Needs RTGW_NATS_URL (and RTGW_NATS_PREFIX when not rtgw). Prints JSON.`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
}

/** Returns the process exit code. */
export async function deadLettersCommand(args: string[], env = process.env): Promise<number> {
  const [verb, ...rest] = args;
  let cfg: Readonly<BusClientConfig>;
  try {
    cfg = loadBusClientConfig(env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`${USAGE}\nbad configuration: ${e.message}\n`);
    return 2;
  }
  if (verb !== 'list' && verb !== 'redrive') {
    process.stderr.write(USAGE + '\n');
    return 2;
  }
  const subj = subjects(cfg.prefix);
  const bus = new NatsBus(await connectNats(cfg.natsUrls, 'rtgw-deadletters'));
  const call = async (op: 'deadletters' | 'redrive', body: unknown) => {
    const reply = toJson<Record<string, unknown>>(await bus.request(subj.api(op), JSON.stringify(body), 30_000));
    if (isErrorReply(reply)) throw new Error(`${reply.error.code}: ${reply.error.msg}`);
    return reply;
  };
  try {
    const user = flag(rest, '--user');
    if (verb === 'list') {
      const limit = flag(rest, '--limit');
      process.stdout.write(
        JSON.stringify(
          await call('deadletters', { user, limit: limit === undefined ? undefined : Number(limit) }),
          null,
          2,
        ) + '\n',
      );
      return 0;
    }
    let ids = rest.filter((a, i) => !a.startsWith('--') && rest[i - 1] !== '--user');
    if (rest.includes('--all')) {
      ids = ((await call('deadletters', { user, limit: 1000 })).deadLetters as DeadLetter[]).map((d) => d.id);
    }
    if (ids.length === 0) {
      process.stdout.write(JSON.stringify({ redriven: [], missing: [] }) + '\n');
      return 0;
    }
    process.stdout.write(JSON.stringify(await call('redrive', { ids }), null, 2) + '\n');
    return 0;
  } catch (e) {
    process.stderr.write(JSON.stringify({ level: 50, msg: e instanceof Error ? e.message : String(e) }) + '\n');
    return 1;
  } finally {
    await bus.close();
  }
}
