// What `npm start` prints: the progress board (one bar per job, one line for the volunteers) and
// the summary. Pure functions of what the hub and the volunteers report, so tests read them.
import type { JobProgressAnswer, TrainProgress } from '../protocol/api.ts';
import { formatCredit } from '../protocol/credit.ts';
import { summarize } from './cli-volunteer.ts';
import type { StartJob, StartSummary } from './start.ts';
import { TRAIN_FILES, trainStand } from './start-train.ts';
import type { VolunteerReport } from './volunteers.ts';

/** A job on the board; `progress` is the hub's latest push. */
export interface JobRow {
  readonly id: string;
  readonly name: string;
  readonly kind: string;
  progress: JobProgressAnswer | undefined;
  /** A train job's rounds and losses (`GET /v1/jobs/:id/train`), read when its shards change. */
  train?: TrainProgress;
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
  const kinds = Math.max(...rows.map((r) => r.kind.length));
  const lines = rows.map((r) => {
    const p = r.progress;
    const name = `${r.name.padEnd(width)} ${r.kind.padEnd(kinds)}`;
    if (!p) return `${name} ${bar(0, 1)} waiting for the hub`;
    // A train job's bar counts rounds (its shards are planned one round at a time).
    const t = r.train ? trainStand(r.train) : undefined;
    const tail = [
      ...(t
        ? [
            t.round >= t.rounds ? `evaluating the trained model` : `round ${t.round + 1}/${t.rounds}`,
            t.valLoss === undefined ? '' : `val loss ${t.valLoss.toFixed(3)}`,
            t.trainLoss === undefined ? '' : `train loss ${t.trainLoss.toFixed(3)}`,
          ]
        : []),
      `${p.validated}/${p.shards} validated`,
      p.done > 0 ? `${p.done} awaiting agreement` : '',
      p.inFlight > 0 ? `${p.inFlight} in flight` : '',
      p.failed > 0 ? `${p.failed} failed` : '',
      p.status === 'running' ? '' : p.status,
    ]
      .filter(Boolean)
      .join(' · ');
    const filled = t ? bar(t.closed, t.rounds + 1) : bar(p.validated, p.shards);
    return `${name} ${filled} ${tail}`;
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

/** The training job's lines: its loss from the first round to the last, its files, its text. */
export function trainLines(j: StartJob): string[] {
  const t = j.train;
  if (!t) return [];
  const loss = (k: 'valLoss' | 'trainLoss') => {
    const from = t.curve.find((p) => p[k] !== undefined);
    const to = [...t.curve].reverse().find((p) => p[k] !== undefined);
    return from && to
      ? `${from[k]?.toFixed(3)} at round ${from.round} → ${to[k]?.toFixed(3)} at round ${to.round}`
      : 'none';
  };
  return [
    `training (${j.name}, ${t.params} parameters, ${t.rounds} rounds): validation loss ${loss('valLoss')}; training loss ${loss('trainLoss')}`,
    `  its model: ${j.results}/ (${TRAIN_FILES})`,
    ...(t.sample !== undefined ? [`  sampled: ${JSON.stringify(t.sample)}`] : []),
    ...(t.sampleError !== undefined ? [`  no sample: ${t.sampleError}`] : []),
  ];
}

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
    ...s.jobs.flatMap((j) => (j.train ? trainLines(j) : [])),
    ...(s.picture ? [`picture: ${s.picture}`] : []),
    `hub database: ${s.dir}/hub.db`,
  ];
  const verdict = s.ok
    ? `done in ${s.seconds.toFixed(0)} s: every shard validated by agreeing replicas, credit granted${chain ? ', and claimed as tokens by wallets holding no ETH' : ''}.`
    : `FAILED after ${s.seconds.toFixed(0)} s: ${s.reason}`;
  return ['', jobs, '', credits, '', ...where, '', verdict].join('\n');
}
