// The researcher's side of `hearth`: submit, status and results talk to a running hub over its
// HTTP API (see hub-server.ts), with a bearer token. HTTP failures are printed as the hub sent
// them: `<status> <code>: <message>`.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { HubApi } from '../client/hub-api.ts';
import { formatMs } from '../core/duration.ts';
import { HearthError } from '../core/errors.ts';
import type { HubStatsAnswer, JobProgressAnswer, ResultsIndex } from '../protocol/api.ts';
import { formatCredit, type parseCreditReport } from '../protocol/credit.ts';
import { parseManifest } from '../protocol/kinds/index.ts';
import { npy } from '../protocol/npy.ts';
import { type Command, type Flags, positional, str, usage } from './cli-args.ts';
import { manifestBlobs } from './hub-jobs.ts';
import { downloadTrainResults } from './train-download.ts';

/** Where `hearth hub` listens by default, and where the client commands look for it. */
export const DEFAULT_HUB = 'http://127.0.0.1:8787';

export const CONNECTION = `  --hub URL      the hub (default: $HEARTH_HUB, else ${DEFAULT_HUB})
  --token T      a researcher token (default: $HEARTH_TOKEN); see "hearth token create"

Every request gives up after $HEARTH_TIMEOUT_MS (default 30000) ms without an answer, plus one
second per MiB it uploads, so a hub that stopped answering ends the command with exit 1.`;

/** How long one request may go unanswered (ms): $HEARTH_TIMEOUT_MS, else 30 s. */
function requestTimeoutMs(): number {
  const v = Number(process.env.HEARTH_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? v : 30_000;
}
export const connectionOptions = { hub: { type: 'string' }, token: { type: 'string' } } as const;

/** The hub and token a command talks to, from its flags and the environment. */
export function client(flags: Flags): HubApi {
  const hub = (str(flags, 'hub') ?? process.env.HEARTH_HUB ?? DEFAULT_HUB).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+$/.test(hub)) {
    throw usage(`--hub: expected a URL like ${DEFAULT_HUB}, got "${hub}".`);
  }
  const token = str(flags, 'token') ?? process.env.HEARTH_TOKEN;
  if (!token) throw usage('no token: pass --token or set HEARTH_TOKEN (see "hearth token create").');
  return new HubApi({ hub, token, timeoutMs: requestTimeoutMs() });
}

const submit: Command = {
  name: 'submit',
  summary: 'upload a manifest\u2019s blobs and submit the job; prints the job id',
  help: `usage: hearth submit MANIFEST.json [--hub URL] [--token T] [--blobs-from DIR]

Reads the job manifest, uploads every blob it names (model, inputs, uniforms) that is a file
DIR/<sha256> and not yet on the hub, submits the job and prints its id on stdout.

  --blobs-from DIR   where the blob files are (default: the manifest's folder)
${CONNECTION}`,
  options: { ...connectionOptions, 'blobs-from': { type: 'string' } },
  positionals: 1,
  async run(flags, args) {
    const file = positional(args, 0, 'MANIFEST.json');
    const c = client(flags);
    const path = resolve(file);
    let manifest: ReturnType<typeof parseManifest>;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
      manifest = parseManifest(JSON.parse(text));
    } catch (e) {
      // parseManifest's message starts with the bad field's path; JSON and file errors say what failed.
      throw new HearthError('input/invalid', `${file}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const dir = resolve(str(flags, 'blobs-from', dirname(path)));
    let uploaded = 0;
    let bytes = 0;
    let present = 0;
    const missing: string[] = [];
    for (const sha of manifestBlobs(manifest)) {
      if (await c.hasBlob(sha)) {
        present++;
        continue;
      }
      const blobFile = join(dir, sha);
      if (!existsSync(blobFile) || !statSync(blobFile).isFile()) {
        missing.push(sha);
        continue;
      }
      const data = new Uint8Array(readFileSync(blobFile));
      const actual = createHash('sha256').update(data).digest('hex');
      if (actual !== sha)
        throw new HearthError('blob/corrupt', `${blobFile}: its SHA-256 is ${actual}, not the name it has.`);
      await c.putBlob(sha, data);
      uploaded++;
      bytes += data.byteLength;
    }
    if (missing.length > 0) {
      throw new HearthError(
        'blob/missing',
        `${missing.length} blob(s) the manifest names are neither in ${dir} nor on the hub: ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', …' : ''}`,
      );
    }
    process.stderr.write(`uploaded ${uploaded} blob(s), ${bytes} bytes; ${present} already on the hub\n`);
    const { job } = await c.submit(text);
    process.stdout.write(`${job}\n`);
    return 0;
  },
};

type Progress = JobProgressAnswer;

/**
 * What the progress line cannot say: why the job failed, which shards failed and why, what it
 * waits for. One line each, the researcher's own error first.
 */
export function detailLines(p: Progress): string[] {
  const out: string[] = [];
  if (p.error) out.push(`job failed: ${p.error.code}: ${p.error.message}`);
  for (const f of p.failures ?? []) {
    if (p.error && f.message === p.error.message) continue;
    out.push(`shard ${f.index} failed: ${f.code ? `${f.code}: ` : ''}${f.message}`);
  }
  const listed = p.failures?.length ?? 0;
  if (p.failed > listed && listed > 0) out.push(`(${p.failed - listed} more failed shards)`);
  if (p.waiting) out.push(`waiting: ${p.waiting}`);
  return out;
}

/** One status line: a bar of validated shards, then the counts. */
export function progressLine(p: Progress, perSecond?: number): string {
  const width = 30;
  const full = p.shards === 0 ? width : Math.floor((p.validated / p.shards) * width);
  const bar = `${'#'.repeat(full)}${'.'.repeat(width - full)}`;
  const pct = (p.progress * 100).toFixed(0).padStart(3);
  const rate = perSecond === undefined ? '' : ` · ${perSecond.toFixed(1)} shards/s`;
  return `${p.job} [${bar}] ${pct}% ${p.validated}/${p.shards} validated · ${p.done} done awaiting agreement · ${p.inFlight} in flight · ${p.failed} failed · ${p.status}${rate}`;
}

type Latency = HubStatsAnswer['latency'];
const latencyText = (l: Latency) =>
  l.p50Ms === undefined || l.p95Ms === undefined
    ? 'no results in the last hour'
    : `p50 ${formatMs(l.p50Ms)}, p95 ${formatMs(l.p95Ms)} (${l.samples} result${l.samples === 1 ? '' : 's'}, last hour)`;

/** The line `hearth status` prints under the details: the job's ETA and shard latency. */
export function jobLevelsLine(j: HubStatsAnswer['jobs'][number]): string {
  const eta =
    j.status !== 'running'
      ? ''
      : j.etaMs !== undefined
        ? `eta ${formatMs(j.etaMs)} at ${j.validatedPerMinute.toFixed(1)} shards/min · `
        : 'eta unknown (no shard validated in the last 10 minutes) · ';
  return `${eta}shard latency ${latencyText(j.latency)}`;
}

/** What `hearth stats` prints. */
export function statsLines(s: HubStatsAnswer): string[] {
  const pct =
    s.leases.validFraction === undefined ? 'no lease ended' : `${(s.leases.validFraction * 100).toFixed(1)}%`;
  const out = [
    `volunteers connected   ${s.volunteers}`,
    `validated shards       ${s.validatedPerMinute.toFixed(1)} per minute (last hour)`,
    `shard latency          ${latencyText(s.latency)}`,
    `leases ending valid    ${pct} (${s.leases.valid} of ${s.leases.ended} that ended in the last hour)`,
  ];
  if (s.jobs.length > 0) {
    const w = Math.max(...s.jobs.map((j) => j.job.length), 3);
    out.push('', `${'job'.padEnd(w)}  status     remaining  shards/min  eta       p50       p95`);
    for (const j of s.jobs) {
      const eta = j.status !== 'running' ? '-' : j.etaMs === undefined ? '?' : formatMs(j.etaMs);
      out.push(
        `${j.job.padEnd(w)}  ${j.status.padEnd(9)}  ${String(j.remaining).padEnd(9)}  ${j.validatedPerMinute.toFixed(1).padEnd(10)}  ${eta.padEnd(8)}  ${(j.latency.p50Ms === undefined ? '-' : formatMs(j.latency.p50Ms)).padEnd(8)}  ${j.latency.p95Ms === undefined ? '-' : formatMs(j.latency.p95Ms)}`,
      );
    }
  }
  return out;
}

/** The job's line of `GET /v1/stats`, or undefined (a hub older than the route: 404). */
async function jobLevels(c: HubApi, job: string): Promise<HubStatsAnswer['jobs'][number] | undefined> {
  try {
    return (await c.stats()).jobs.find((j) => j.job === job);
  } catch (e) {
    if (e instanceof HearthError && e.code === 'net/refused' && e.details.status === 404) return undefined;
    throw e;
  }
}

const status: Command = {
  name: 'status',
  summary: 'a job\u2019s progress: shards validated, done, in flight',
  help: `usage: hearth status JOB [--watch] [--hub URL] [--token T]

Prints one progress line: validated shards as a bar, shards done but still awaiting agreement,
shards in flight (leased now), failed shards and the job's status; then, on lines of their own,
why the job or its shards failed (a kernel's compile error with its line and column, the error
volunteers reported) and what it waits for (shards whose replicas need another volunteer); then
the job's ETA at its recent validation rate and its shard latency (lease to accepted result)
p50/p95 over the last hour, from the hub's service levels (GET /v1/stats).

  --watch        follow the hub's pushed progress until the job ends (adds shards/s)

Exits 1 when the job has failed.
${CONNECTION}`,
  options: { ...connectionOptions, watch: { type: 'boolean' } },
  positionals: 1,
  async run(flags, args) {
    const job = positional(args, 0, 'JOB');
    const c = client(flags);
    let p = await c.progress(job);
    if (flags.watch !== true) {
      process.stdout.write(`${progressLine(p)}\n`);
      for (const d of detailLines(p)) process.stdout.write(`  ${d}\n`);
      const levels = await jobLevels(c, job);
      if (levels) process.stdout.write(`  ${jobLevelsLine(levels)}\n`);
      const budget = await budgetLine(c);
      if (budget) process.stdout.write(`  ${budget}\n`);
      return p.status === 'failed' ? 1 : 0;
    }
    const tty = process.stdout.isTTY === true;
    const start = { t: Date.now(), validated: p.validated };
    let shown = '';
    const show = () => {
      const secs = (Date.now() - start.t) / 1000;
      const line = progressLine(p, secs > 0 ? (p.validated - start.validated) / secs : undefined);
      const details = detailLines(p);
      if (details.join('\n') !== shown) {
        // New details go on lines of their own, above the bar that keeps refreshing.
        shown = details.join('\n');
        if (tty) process.stdout.write('\r\x1b[2K');
        for (const d of details) process.stdout.write(`  ${d}\n`);
      }
      process.stdout.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
    };
    show();
    // The hub pushes each change (GET /v1/jobs/:id/events); the stream ends with the job.
    for await (const next of c.watch(job)) {
      p = next;
      show();
    }
    if (tty) process.stdout.write('\n');
    const levels = await jobLevels(c, job);
    if (levels) process.stdout.write(`  ${jobLevelsLine(levels)}\n`);
    return p.status === 'failed' ? 1 : 0;
  },
};

/** The caller's credit budget as one line (undefined for the admin, or a hub before budgets). */
async function budgetLine(c: HubApi): Promise<string | undefined> {
  try {
    const b = await c.budget();
    if (b.name === undefined) return undefined;
    return b.unlimited || b.budget === undefined
      ? `budget: ${formatCredit(b.used)} credits held by your jobs, no limit`
      : `budget: ${formatCredit(b.used)} of ${formatCredit(b.budget)} credits held by your jobs, ${formatCredit(b.left ?? 0n)} left`;
  } catch {
    return undefined;
  }
}

/** What `downloadResults` wrote. */
export interface Downloaded {
  /** The hub's results index. */
  readonly index: ResultsIndex;
  /** index.json's shards: each output with the file it went to. */
  readonly shards: readonly {
    readonly shard: string;
    readonly index: number;
    readonly replicas?: number;
    readonly outputs: readonly (ResultsIndex['shards'][number]['outputs'][number] & { file: string })[];
  }[];
  /** Output files written. */
  readonly files: number;
}

/**
 * Downloads every validated shard's outputs of `job` into `out` (created when absent): one `.npy`
 * per output, each checked against the index's hash, and `index.json`.
 */
export async function downloadResults(api: HubApi, job: string, out: string): Promise<Downloaded> {
  const index = await api.results(job);
  mkdirSync(out, { recursive: true });
  const taken = new Set<string>();
  const shards = [];
  for (const s of index.shards) {
    const outputs = [];
    for (const o of s.outputs) {
      const data = await api.output(job, s.index, o.name);
      const got = createHash('sha256').update(data).digest('hex');
      if (got !== o.sha256 || data.byteLength !== o.bytes) {
        throw new HearthError(
          'blob/corrupt',
          `shard ${s.index} output "${o.name}": the bytes do not match the index's hash.`,
        );
      }
      // Output names are the researcher's; a file name gets only safe characters, made unique.
      const stem = `${s.index}-${o.name.replace(/[^A-Za-z0-9._-]/g, '_')}`;
      let file = `${stem}.npy`;
      for (let k = 2; taken.has(file); k++) file = `${stem}~${k}.npy`;
      taken.add(file);
      writeFileSync(join(out, file), npy(o.dtype, o.shape, data));
      outputs.push({ ...o, file });
    }
    shards.push({
      shard: s.shard,
      index: s.index,
      ...(s.replicas !== undefined ? { replicas: s.replicas } : {}),
      outputs,
    });
  }
  const doc = { job: index.job, status: index.status, shards };
  writeFileSync(join(out, 'index.json'), `${JSON.stringify(doc, null, 2)}\n`);
  return { index, shards, files: shards.reduce((n, s) => n + s.outputs.length, 0) };
}

const results: Command = {
  name: 'results',
  summary: 'download validated results as .npy files plus index.json',
  help: `usage: hearth results JOB --out DIR [--hub URL] [--token T]

Downloads the canonical result of every validated shard: each output tensor becomes
DIR/<shard index>-<output name>.npy (NumPy format 1.0, little-endian, C order), and
DIR/index.json lists them with dtype, shape, SHA-256 and file. Every download is checked
against the hash in the hub's index. A running job gives the shards validated so far.

A train job writes its trained model instead: DIR/weights/<tensor>.npy (one per parameter
tensor), DIR/config.json (model and layout), DIR/loss.csv and DIR/loss.png (training and
validation loss by round), DIR/model.onnx (the transformer as an ONNX model, input "tokens"
int32 [batch, T], output "logits" f32 [batch, T, 256]) and DIR/train.json (the rounds).

  --out DIR      where to write (created when absent)
${CONNECTION}`,
  options: { ...connectionOptions, out: { type: 'string' } },
  positionals: 1,
  async run(flags, args) {
    const job = positional(args, 0, 'JOB');
    const out = str(flags, 'out');
    if (!out) throw usage('--out DIR is required.');
    const api = client(flags);
    if ((await api.results(job)).kind === 'train') {
      const t = await downloadTrainResults(api, job, out);
      process.stdout.write(
        `wrote the ${t.final ? 'trained' : `round-${t.round} (not final)`} weights (${t.params} parameters, ${t.tensors} tensors as .npy), config.json, loss.csv, loss.png and model.onnx to ${out}\n`,
      );
      if (!t.final)
        process.stderr.write(`note: job ${job} is ${t.status}; the weights are the latest round's θ.\n`);
      return 0;
    }
    const { files, shards, index } = await downloadResults(api, job, out);
    process.stdout.write(
      `wrote ${files} tensor(s) from ${shards.length} shard(s) and index.json to ${out}\n`,
    );
    const single = shards.filter((s) => s.replicas === 1).length;
    if (single > 0) {
      process.stdout.write(
        `${single} shard(s) rest on a single volunteer's result (replicas: 1 in index.json); the others on agreeing replicas.\n`,
      );
    }
    if (index.status !== 'done') {
      process.stderr.write(
        `note: job ${index.job} is ${index.status}; only validated shards were written.\n`,
      );
    }
    return 0;
  },
};

const cancel: Command = {
  name: 'cancel',
  summary: 'cancel a running job: no more leases, pending credit voided, results so far kept',
  help: `usage: hearth cancel JOB [--hub URL] [--token T]

Cancels a job you submitted (the admin token cancels any job). Its shards stop being handed out,
outstanding leases are dropped (their late results are refused), and credit still pending for
unvalidated shards is voided; credit already granted stays, and validated results stay readable
with "hearth results". Cancelling a cancelled job changes nothing; a job that is done or failed
cannot be cancelled (exit 1).
${CONNECTION}`,
  options: connectionOptions,
  positionals: 1,
  async run(flags, args) {
    const job = positional(args, 0, 'JOB');
    const c = client(flags);
    const out = await c.cancel(job);
    process.stdout.write(
      out.already
        ? `${job} was already cancelled\n`
        : `cancelled ${job}: ${out.leasesDropped} lease(s) dropped, ${out.creditVoided} pending credit entr${out.creditVoided === 1 ? 'y' : 'ies'} voided\n`,
    );
    return 0;
  },
};

/** What `hearth credits` prints for a volunteer's credit report. */
export function creditsLine(c: ReturnType<typeof parseCreditReport>): string {
  const waiting =
    c.pendingResults === 0
      ? ''
      : ` (${c.pendingResults} result${c.pendingResults === 1 ? '' : 's'} awaiting validation)`;
  return `${c.volunteer}: ${formatCredit(c.granted)} credits granted, ${formatCredit(c.pending)} pending${waiting}`;
}

const credits: Command = {
  name: 'credits',
  summary: 'a volunteer\u2019s credit: granted and pending',
  help: `usage: hearth credits VOLUNTEER [--units] [--hub URL] [--token T]

Prints a volunteer's credit (VOLUNTEER is its id, as the hub's ledger names it): what validated
results earned (granted) and what awaits validation (pending). Amounts are exact decimals of the
hub's integer base units (10^6 per credit); --units prints the integers themselves.
  --units        print base units, one line: VOLUNTEER GRANTED PENDING
${CONNECTION}`,
  options: { ...connectionOptions, units: { type: 'boolean' } },
  positionals: 1,
  async run(flags, args) {
    const volunteer = positional(args, 0, 'VOLUNTEER');
    const c = client(flags);
    const report = await c.credits(volunteer);
    process.stdout.write(
      flags.units === true
        ? `${report.volunteer} ${report.granted} ${report.pending}\n`
        : `${creditsLine(report)}\n`,
    );
    return 0;
  },
};

const stats: Command = {
  name: 'stats',
  summary: 'the hub\u2019s service levels: latency p50/p95, shards/min, volunteers, ETAs',
  help: `usage: hearth stats [--hub URL] [--token T]

Prints the hub's service levels over the last hour (GET /v1/stats): volunteers connected now,
validated shards per minute, shard latency (a lease issued to its result accepted) p50 and p95,
and the fraction of leases that ended in a valid result; then your running and recently active
jobs with shards remaining, their recent rate, ETA and latency.
${CONNECTION}`,
  options: connectionOptions,
  positionals: 0,
  async run(flags) {
    const s = await client(flags).stats();
    for (const l of statsLines(s)) process.stdout.write(`${l}\n`);
    return 0;
  },
};

export const clientCommands: readonly Command[] = [submit, status, results, cancel, credits, stats];
