// A child process of the hub bench holding many volunteers (a process may open at most 20,000
// files here, so 10,000 volunteers need more than one). Driven over IPC:
//   { cmd: 'connect', url, count, parallel }  → { connected, failed, ms, firstError? }
//   { cmd: 'work', ms, batch? }                       → { acks, errors, idle, ms, cpuUs } (cpuUs: this process's
//        user+system CPU time over the work)
//   { cmd: 'close' }                          → exits
import { BenchVolunteer } from './volunteer.ts';

type Command =
  | { cmd: 'connect'; url: string; count: number; parallel: number }
  | { cmd: 'work'; ms: number; batch?: number }
  | { cmd: 'close' };

const volunteers: BenchVolunteer[] = [];

async function connect(url: string, count: number, parallel: number) {
  const t0 = performance.now();
  let next = 0;
  let failed = 0;
  let firstError: string | undefined;
  const lane = async () => {
    while (next < count) {
      next++;
      try {
        volunteers.push(await BenchVolunteer.connect(url));
      } catch (e) {
        failed++;
        firstError ??= e instanceof Error ? e.message : String(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, lane));
  return { connected: volunteers.length, failed, ms: performance.now() - t0, firstError };
}

async function work(ms: number, batch = 1) {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const until = Date.now() + ms;
  const outs = await Promise.all(volunteers.map((v) => v.work(until, batch)));
  const acks: Record<string, number> = {};
  let errors = 0;
  let idle = 0;
  for (const o of outs) {
    for (const [k, n] of Object.entries(o.acks)) acks[k] = (acks[k] ?? 0) + n;
    errors += o.errors;
    idle += o.idle;
  }
  const cpu = process.cpuUsage(cpu0);
  return { acks, errors, idle, ms: performance.now() - t0, cpuUs: cpu.user + cpu.system };
}

process.on('message', (m: Command) => {
  const reply = (x: unknown) => process.send?.(x);
  if (m.cmd === 'connect') connect(m.url, m.count, m.parallel).then(reply);
  else if (m.cmd === 'work') work(m.ms, m.batch).then(reply);
  else {
    for (const v of volunteers) v.close();
    process.exit(0);
  }
});
process.send?.({ ready: true });
