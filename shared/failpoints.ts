// Failpoints for fault tests: `RTGW_FAILPOINTS=name[:n],...` kills the process with SIGKILL at the n-th
// (default first) time it reaches `name`. Honoured only when NODE_ENV=test, so a production process
// can never be killed by an environment variable left behind.
const armed = new Map<string, number>();
if (process.env.NODE_ENV === 'test') {
  for (const spec of (process.env.RTGW_FAILPOINTS ?? '').split(',')) {
    const [name, n] = spec.trim().split(':');
    if (name) armed.set(name, Math.max(1, Number(n ?? 1) || 1));
  }
}

/** Names a point where a crash is interesting: before sequencing, after the durable write, mid-sweep. */
export function failpoint(name: string): void {
  const left = armed.get(name);
  if (left === undefined) return;
  if (left > 1) return void armed.set(name, left - 1);
  process.stderr.write(JSON.stringify({ level: 60, msg: `failpoint ${name}: killing the process` }) + '\n');
  process.kill(process.pid, 'SIGKILL');
}
