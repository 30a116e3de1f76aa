// `hearth volunteer`: headless Chromium volunteers against a running hub, with a status line.
import { HearthError, isHearthError } from '../core/errors.ts';
import { type Command, int, str, usage } from './cli-args.ts';
import { DEFAULT_HUB } from './cli-client.ts';
import { type AdapterChoice, launchVolunteers, type VolunteerReport } from './volunteers.ts';

const ADAPTERS: readonly AdapterChoice[] = ['auto', 'swiftshader', 'native'];

/** One line: how many volunteers work, and what they have done between them. */
export function summarize(reports: readonly VolunteerReport[]): string {
  const sum = (k: keyof NonNullable<VolunteerReport['stats']>) =>
    reports.reduce((n, r) => n + (r.stats?.[k] ?? 0), 0);
  const states = new Map<string, number>();
  for (const r of reports) states.set(r.state, (states.get(r.state) ?? 0) + 1);
  const stateText = [...states].map(([s, n]) => `${n} ${s}`).join(', ');
  return (
    `${reports.length} volunteers (${stateText}) · ${sum('leases')} leases · ${sum('valid')} valid · ` +
    `${sum('pending')} awaiting replicas · ${sum('invalid') + sum('refused')} rejected · ${sum('failed')} failed`
  );
}

/**
 * `--idle-exit`: done once some volunteer has run a shard, none is working on one now (a shard
 * running or its blobs arriving is activity even when no counter moves), and no counter changed
 * for `idleExitS` seconds.
 */
export function idleDone(
  reports: readonly VolunteerReport[],
  lastChangeMs: number,
  nowMs: number,
  idleExitS: number,
): boolean {
  const ran = reports.some((r) => (r.stats?.leases ?? 0) > 0);
  const working = reports.some((r) => r.state === 'working');
  return ran && !working && nowMs - lastChangeMs > idleExitS * 1000;
}

export const volunteerCommand: Command = {
  name: 'volunteer',
  summary: 'run N headless Chromium volunteers against a hub',
  help: `usage: hearth volunteer [--count N] [--hub URL ...] [--page URL] [--adapter auto|swiftshader|native]
                        [--idle-exit SECONDS] [--verbose]

Opens N headless Chromium tabs on the hub's volunteer page, each with its own identity (its own
browser profile), says yes on each one's behalf (running this command is the operator's yes),
and prints a status line every few seconds until SIGINT or SIGTERM.

  --count N            volunteers to run (default 1, at most 64)
  --hub URL            the hub (default: $HEARTH_HUB, else ${DEFAULT_HUB}); repeat it (or give
                       URLs separated by commas) for hubs that share one database: the pages
                       load from the first, and a volunteer whose hub dies moves to the next
  --page URL           the page to open (default: <hub>/volunteer/, built by \`npm run build\`)
  --adapter A          WebGPU adapter: auto (this machine's GPU if it has a render node, else
                       SwiftShader), swiftshader, or native (default auto)
  --idle-exit S        exit 0 once the volunteers have run at least one shard and nothing new
                       happened for S seconds (for scripts and demos)
  --verbose            print the pages' console output

Chromium comes from $CHROMIUM_PATH, else /usr/bin/chromium.`,
  options: {
    count: { type: 'string' },
    hub: { type: 'string', multiple: true },
    page: { type: 'string' },
    adapter: { type: 'string' },
    'idle-exit': { type: 'string' },
    verbose: { type: 'boolean' },
  },
  positionals: 0,
  async run(flags) {
    const count = int(flags, 'count', 1, 1, 64);
    const given = (flags.hub as string[] | undefined) ?? [process.env.HEARTH_HUB || DEFAULT_HUB];
    const hubs = given
      .flatMap((h) => h.split(','))
      .map((h) => h.trim().replace(/\/+$/, ''))
      .filter((h) => h !== '');
    for (const h of hubs) {
      if (!URL.canParse(h) || !/^https?:$/.test(new URL(h).protocol)) {
        throw usage(`--hub: expected a URL like ${DEFAULT_HUB}, got "${h}".`);
      }
    }
    const [hubUrl = DEFAULT_HUB, ...hubUrls] = hubs;
    const adapter = str(flags, 'adapter', 'auto') as AdapterChoice;
    if (!ADAPTERS.includes(adapter)) {
      throw usage(`--adapter: expected one of ${ADAPTERS.join(', ')}, got "${adapter}".`);
    }
    const idleExit = int(flags, 'idle-exit', 0, 0, 86_400);
    const page = str(flags, 'page');
    const verbose = flags.verbose === true;
    let volunteers: Awaited<ReturnType<typeof launchVolunteers>>;
    try {
      volunteers = await launchVolunteers({
        hubUrl,
        ...(hubUrls.length ? { hubUrls } : {}),
        count,
        adapter,
        ...(page ? { pageUrl: page } : {}),
        ...(verbose ? { onLog: (i, line) => process.stderr.write(`[volunteer ${i}] ${line}\n`) } : {}),
      });
    } catch (e) {
      if (isHearthError(e)) throw e;
      throw new HearthError('net/unreachable', e instanceof Error ? e.message : String(e), { cause: e });
    }
    process.stdout.write(`started ${count} volunteer(s) against ${hubs.join(', ')}\n`);
    let stop = false;
    const onSignal = () => {
      stop = true;
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let last = '';
    let lastChange = Date.now();
    let printed = '';
    let printedAt = 0;
    try {
      while (!stop) {
        await new Promise((r) => setTimeout(r, 250));
        const reports = await volunteers.report();
        const line = summarize(reports);
        const work = reports.map((r) => JSON.stringify(r.stats)).join('|');
        if (work !== last) {
          last = work;
          lastChange = Date.now();
        }
        // A line when something changed (at most one a second), and at least every 5 s.
        const since = Date.now() - printedAt;
        if ((line !== printed && since > 1000) || since > 5000) {
          process.stdout.write(`${line}\n`);
          printed = line;
          printedAt = Date.now();
        }
        for (const r of reports) {
          if (r.error) throw new HearthError('shard/failed', `volunteer ${r.index} failed: ${r.error}`);
        }
        if (idleExit > 0 && idleDone(reports, lastChange, Date.now(), idleExit)) {
          process.stdout.write(`idle for ${idleExit} s: done\n`);
          break;
        }
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await volunteers.close();
    }
    return 0;
  },
};
