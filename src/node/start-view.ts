// What `npm start` prints: the progress board (one bar per job, one line for the volunteers) and
// the summary. Pure functions of what the hub and the volunteers report, so tests read them.
import type { JobProgressAnswer } from '../protocol/api.ts';
import { formatCredit } from '../protocol/credit.ts';
import { summarize } from './cli-volunteer.ts';
import type { StartSummary } from './start.ts';
import type { VolunteerReport } from './volunteers.ts';

/** A job on the board; `progress` is the hub's latest push. */
export interface JobRow {
  readonly id: string;
  readonly name: string;
  readonly kind: string;
  progress: JobProgressAnswer | undefined;
}

const BAR = 24;

/** `[#########...............]` for `done` of `total`. */
export function bar(done: number, total: number, width = BAR): string {
  const full = total <= 0 ? width : Math.min(width, Math.floor((done / total) * width));
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/** The board's lines: a bar per job, the volunteers, the time. */
export function board(
  rows: readonly JobRow[],
  volunteers: readonly VolunteerReport[],
  elapsedMs: number,
): string[] {
  const width = Math.max(...rows.map((r) => r.name.length));
  const lines = rows.map((r) => {
    const p = r.progress;
    const name = `${r.name.padEnd(width)} ${r.kind.padEnd(4)}`;
    if (!p) return `${name} ${bar(0, 1)} waiting for the hub`;
    const tail = [
      `${p.validated}/${p.shards} validated`,
      p.done > 0 ? `${p.done} awaiting agreement` : '',
      p.inFlight > 0 ? `${p.inFlight} in flight` : '',
      p.failed > 0 ? `${p.failed} failed` : '',
      p.status === 'running' ? '' : p.status,
    ]
      .filter(Boolean)
      .join(' · ');
    return `${name} ${bar(p.validated, p.shards)} ${tail}`;
  });
  lines.push(`${summarize(volunteers)} · ${(elapsedMs / 1000).toFixed(0)} s`);
  return lines;
}

/** A fixed-width table: the first row is the header. */
export function table(rows: readonly (readonly string[])[]): string {
  const head = rows[0] ?? [];
  const widths = head.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

const gflop = (flops: number) => (flops / 1e9).toFixed(flops >= 1e9 ? 1 : 3);

/** The summary: jobs, volunteers' credit, where things are, and the verdict. */
export function summaryText(s: StartSummary): string {
  const jobs = table([
    [
      'job',
      'kind',
      'status',
      'shards',
      'validated',
      'failed',
      'replicas agreed',
      'GFLOP',
      'seconds',
      'shards/s',
    ],
    ...s.jobs.map((j) => [
      j.name,
      j.kind,
      j.status,
      String(j.shards),
      String(j.validated),
      String(j.failed),
      String(j.replicas),
      gflop(j.flops),
      j.seconds.toFixed(1),
      j.seconds > 0 ? (j.validated / j.seconds).toFixed(2) : '-',
    ]),
  ]);
  const chain = s.credits.some((c) => c.address !== undefined);
  const credits = table([
    [
      'volunteer',
      'leases',
      'credit granted',
      'credit pending',
      ...(chain ? ['wallet', 'tokens claimed'] : []),
    ],
    ...s.credits.map((c) => [
      `${c.volunteer.slice(0, 16)}…`,
      String(c.leases),
      formatCredit(c.granted),
      formatCredit(c.pending),
      ...(chain
        ? [
            c.address ? `${c.address.slice(0, 10)}…` : '-',
            c.tokens === undefined ? '-' : formatCredit(c.tokens),
          ]
        : []),
    ]),
  ]);
  const where = [
    `results: ${s.dir}/results/<job>/ (.npy per output, index.json)`,
    ...(s.picture ? [`picture: ${s.picture}`] : []),
    `hub database: ${s.dir}/hub.db`,
  ];
  const verdict = s.ok
    ? `done in ${s.seconds.toFixed(0)} s: every shard validated by agreeing replicas, credit granted${chain ? ', and claimed as tokens by wallets holding no ETH' : ''}.`
    : `FAILED after ${s.seconds.toFixed(0)} s: ${s.reason}`;
  return ['', jobs, '', credits, '', ...where, '', verdict].join('\n');
}
