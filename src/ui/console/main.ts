// The researcher console: sign in with a token, see your jobs, follow one live, download its
// outputs as .npy, cancel it, submit a new one. Everything goes through HubApi (client/hub-api.ts)
// to the hub that served this page. The token is kept in this tab's sessionStorage only (never in
// a URL) and sent only as `Authorization: Bearer`.
//
// Live, not polled: the followed job's progress is pushed by the hub (`GET /v1/jobs/:id/events`,
// HubApi.watch); the job list and the service levels (`GET /v1/stats`) are read again when such an
// event arrives (at most every 2 s) and otherwise every 10 s. A followed `train` job also shows its
// loss curve (training.ts), read again when an event says its shards changed.
import { HubApi } from '../../client/hub-api.ts';
import { formatMs } from '../../core/duration.ts';
import { HearthError, isHearthError } from '../../core/errors.ts';
import { sha256Hex } from '../../core/hash.ts';
import type { HubStatsAnswer, JobList, JobProgressAnswer, ResultsIndex } from '../../protocol/api.ts';
import { formatCredit } from '../../protocol/credit.ts';
import { npy } from '../../protocol/npy.ts';
import { HUB_COLOR, JOB_COLOR, ThroughputChart } from './chart.ts';
import { planSubmit, runSubmit } from './submit.ts';
import { TrainingPanel } from './training.ts';

const TOKEN_KEY = 'hearth-console-token';
/** The slow refresh of the list and the stats when no event comes. */
const REFRESH_MS = 10_000;
/** The fastest the list and the stats are read again after pushed events. */
const EVENT_REFRESH_MS = 2_000;
/** Output rows shown in the results table. */
const MAX_OUTPUT_ROWS = 100;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const text = (id: string, value: string) => {
  $(id).textContent = value;
};

let api: HubApi | undefined;
let selected: string | undefined;
let follow: AbortController | undefined;
let timer: ReturnType<typeof setInterval> | undefined;
let stats: HubStatsAnswer | undefined;
let results: ResultsIndex | undefined;
let chart: ThroughputChart | undefined;
let dropped: File[] = [];
/** Each listed job's kind, from the last list read. */
const kinds = new Map<string, string>();
const training = new TrainingPanel(
  () => api,
  (e) => failed(e),
);

$('hub-name').textContent = location.host;

// ---- signing in and out ----

async function signIn(token: string): Promise<void> {
  const candidate = new HubApi({ hub: location.origin, token });
  const list = await candidate.jobs(); // refuses a wrong token before anything is kept
  api = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('signin').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  hideError();
  renderJobs(list);
  void refreshStats();
  if (timer !== undefined) clearInterval(timer);
  timer = setInterval(() => void refreshAll(), REFRESH_MS);
}

function signOut(message?: string): void {
  follow?.abort();
  follow = undefined;
  if (timer !== undefined) clearInterval(timer);
  timer = undefined;
  chart?.destroy();
  chart = undefined;
  training.destroy();
  kinds.clear();
  api = undefined;
  selected = undefined;
  stats = undefined;
  results = undefined;
  sessionStorage.removeItem(TOKEN_KEY);
  $('app').hidden = true;
  $('detail').hidden = true;
  $('sign-out').hidden = true;
  $('signin').hidden = false;
  $<HTMLInputElement>('token').value = '';
  if (message) showError(message);
  $('token').focus();
}

$<HTMLFormElement>('signin-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('token');
  const token = input.value.trim();
  if (!token) return;
  signIn(token).catch((e: unknown) => {
    showError(refusedToken(e) ? 'The hub does not know this token (or it was revoked).' : describe(e));
    input.select();
  });
});
$('sign-out').addEventListener('click', () => signOut());

function refusedToken(e: unknown): boolean {
  return isHearthError(e) && e.code === 'net/refused' && e.details.status === 401;
}

// ---- errors ----

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
function showError(message: string): void {
  const el = $('error');
  el.textContent = message;
  el.hidden = false;
}
function hideError(): void {
  $('error').hidden = true;
}
/** A failed call: a revoked token signs out, anything else is shown. */
function failed(e: unknown): void {
  if (refusedToken(e)) signOut('The hub no longer accepts this token; sign in again.');
  else showError(describe(e));
}

// ---- the job list and the service levels ----

/**
 * `fn` run one at a time: a call while it runs is not dropped but runs once more after it (so
 * the last change is always read), and calls meanwhile share that one rerun.
 */
function oneAtATime<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  let running: Promise<void> | undefined;
  let again: A | undefined;
  const run = (...args: A): Promise<void> => {
    if (running) {
      again = args;
      return running;
    }
    running = fn(...args).finally(() => {
      running = undefined;
      const next = again;
      again = undefined;
      if (next) void run(...next);
    });
    return running;
  };
  return run;
}

let lastRefresh = 0;
let due: ReturnType<typeof setTimeout> | undefined;

const refreshAll = oneAtATime(async () => {
  const client = api;
  if (!client) return;
  lastRefresh = Date.now();
  try {
    const [list] = await Promise.all([client.jobs(), refreshStats()]);
    if (api === client) renderJobs(list);
  } catch (e) {
    failed(e);
  }
});

/** Something changed (a pushed event): read the list and stats again, at most every 2 s. */
function soon(): void {
  if (due !== undefined) return;
  const wait = Math.max(0, lastRefresh + EVENT_REFRESH_MS - Date.now());
  due = setTimeout(() => {
    due = undefined;
    void refreshAll();
  }, wait);
}

async function refreshStats(): Promise<void> {
  if (!api) return;
  try {
    stats = await api.stats();
  } catch (e) {
    failed(e);
    return;
  }
  const s = stats;
  text('s-volunteers', String(s.volunteers));
  api
    .budget()
    .then((b) =>
      text(
        's-budget',
        b.unlimited || b.budget === undefined
          ? `${formatCredit(b.used)} used, no limit`
          : `${formatCredit(b.used)} / ${formatCredit(b.left ?? 0n)} of ${formatCredit(b.budget)} credits`,
      ),
    )
    .catch(() => text('s-budget', 'unknown'));
  text('s-rate', s.validatedPerMinute.toFixed(1));
  text('s-latency', latencyText(s.latency));
  text(
    's-valid',
    s.leases.validFraction === undefined
      ? 'no lease ended'
      : `${(s.leases.validFraction * 100).toFixed(1)}% of ${s.leases.ended}`,
  );
  renderJobLevels();
}

function latencyText(l: HubStatsAnswer['latency']): string {
  return l.p50Ms === undefined || l.p95Ms === undefined
    ? 'no results yet'
    : `${formatMs(l.p50Ms)} / ${formatMs(l.p95Ms)}`;
}

function renderJobs(list: JobList): void {
  for (const j of list.jobs) kinds.set(j.job, j.kind);
  const body = $('jobs-body');
  body.replaceChildren(
    ...list.jobs.map((j) => {
      const tr = document.createElement('tr');
      if (j.job === selected) tr.setAttribute('aria-current', 'true');
      const pick = document.createElement('button');
      pick.type = 'button';
      pick.className = 'link';
      pick.textContent = j.job;
      pick.setAttribute('aria-pressed', String(j.job === selected));
      pick.setAttribute('aria-label', `Follow job ${j.job}`);
      pick.addEventListener('click', () => select(j.job));
      const cells = [
        pick,
        j.kind,
        j.status,
        `${j.validated} / ${j.shards}${j.failed > 0 ? ` (${j.failed} failed)` : ''}`,
        new Date(j.createdAt).toLocaleString(),
      ];
      for (const c of cells) {
        const td = document.createElement('td');
        if (typeof c === 'string') td.textContent = c;
        else td.append(c);
        tr.append(td);
      }
      tr.dataset.job = j.job;
      return tr;
    }),
  );
  $('jobs').hidden = list.jobs.length === 0;
  $('jobs-empty').hidden = list.jobs.length > 0;
  const more = $('jobs-more');
  more.hidden = list.total <= list.jobs.length;
  more.textContent = `The newest ${list.jobs.length} of your ${list.total} jobs are listed.`;
}

// ---- one job, followed ----

function select(job: string): void {
  if (!api) return;
  selected = job;
  for (const tr of $('jobs-body').querySelectorAll('tr')) {
    const on = tr.dataset.job === job;
    if (on) tr.setAttribute('aria-current', 'true');
    else tr.removeAttribute('aria-current');
    tr.querySelector('button')?.setAttribute('aria-pressed', String(on));
  }
  $('detail').hidden = false;
  text('d-job', job);
  results = undefined;
  renderResults(job);
  chart ??= new ThroughputChart($('chart'));
  renderJobLevels();
  training.show(kinds.get(job) === 'train' ? job : undefined);
  follow?.abort();
  follow = new AbortController();
  void followJob(api, job, follow.signal);
  void refreshResults(job);
}

async function followJob(client: HubApi, job: string, signal: AbortSignal): Promise<void> {
  let validated = -1;
  for (;;) {
    try {
      text('d-live', 'following (pushed by the hub)');
      for await (const p of client.watch(job, signal)) {
        if (signal.aborted) return;
        renderProgress(p);
        training.progress(p);
        soon();
        if (p.validated !== validated) {
          validated = p.validated;
          void refreshResults(job);
        }
      }
      if (signal.aborted) return;
      // The stream ends after the job's last event: done, failed or cancelled.
      text('d-live', 'final');
      void refreshResults(job);
      if (kinds.get(job) === 'train') void training.refresh();
      soon();
      return;
    } catch (e) {
      if (signal.aborted) return;
      if (refusedToken(e)) return failed(e);
      text('d-live', `updates interrupted (${describe(e)}); trying again in 5 s`);
      await new Promise((r) => setTimeout(r, 5000));
      if (signal.aborted) return;
    }
  }
}

function renderProgress(p: JobProgressAnswer): void {
  if (p.job !== selected) return;
  const status = $('d-status');
  status.textContent = p.status;
  status.className = `status ${p.status}`;
  text('d-shards', String(p.shards));
  text('d-inflight', String(p.inFlight));
  text('d-validated', String(p.validated));
  text('d-failed', String(p.failed));
  text('d-done', String(p.done));
  $<HTMLProgressElement>('d-progress').value = p.progress;
  const problems: string[] = [];
  if (p.error) problems.push(`Job failed: ${p.error.code}: ${p.error.message}`);
  for (const f of p.failures ?? []) {
    if (p.error && f.message === p.error.message) continue;
    problems.push(`Shard ${f.index} failed: ${f.code ? `${f.code}: ` : ''}${f.message}`);
  }
  if (p.failed > (p.failures?.length ?? 0) && (p.failures?.length ?? 0) > 0) {
    problems.push(`(${p.failed - (p.failures?.length ?? 0)} more failed shards)`);
  }
  if (p.waiting) problems.push(`Waiting: ${p.waiting}`);
  const box = $('d-problems');
  box.className = 'problems';
  if (problems.length === 0) box.replaceChildren();
  else {
    const ul = document.createElement('ul');
    for (const m of problems) {
      const li = document.createElement('li');
      li.textContent = m;
      ul.append(li);
    }
    box.replaceChildren(ul);
  }
  $<HTMLButtonElement>('cancel').disabled = p.status !== 'running';
}

/** ETA, latency and the chart of the followed job, from the last stats. */
function renderJobLevels(): void {
  if (!selected || !stats) return;
  const mine = stats.jobs.find((j) => j.job === selected);
  const running = $('d-status').textContent === 'running' || mine?.status === 'running';
  text(
    'd-eta',
    !running
      ? '–'
      : mine?.etaMs !== undefined
        ? `${formatMs(mine.etaMs)} (at ${mine.validatedPerMinute.toFixed(1)} shards/min)`
        : 'unknown: no shard validated in the last 10 minutes',
  );
  text('d-latency', mine ? latencyText(mine.latency) : 'no results in the last hour');
  chart?.update(stats.throughput, mine?.throughput);
  $('chart').setAttribute(
    'aria-label',
    `Validated shards per minute over the last hour: this job ${mine ? mine.validatedPerMinute.toFixed(1) : '0'} recently, the whole hub ${stats.validatedPerMinute.toFixed(1)} on average.`,
  );
}

// ---- results, as .npy ----

const refreshResults = oneAtATime(async (job: string) => {
  const client = api;
  if (!client || job !== selected) return;
  try {
    const index = await client.results(job);
    if (job !== selected || api !== client) return;
    // A train job not in the listed page of jobs: its kind comes with its results.
    if (index.kind === 'train' && kinds.get(job) !== 'train') {
      kinds.set(job, 'train');
      training.show(job);
    }
    results = index;
    renderResults(job);
  } catch (e) {
    failed(e);
  }
});

function renderResults(job: string): void {
  const rows: HTMLTableRowElement[] = [];
  let total = 0;
  for (const s of results?.shards ?? []) {
    for (const o of s.outputs) {
      total++;
      if (rows.length >= MAX_OUTPUT_ROWS) continue;
      const tr = document.createElement('tr');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'Download .npy';
      button.setAttribute('aria-label', `Download .npy of shard ${s.index} output ${o.name}`);
      button.addEventListener('click', () => {
        button.disabled = true;
        download(job, s.index, o)
          .catch(failed)
          .finally(() => {
            button.disabled = false;
          });
      });
      const cells = [
        String(s.index),
        o.name,
        `${o.dtype}[${o.shape.join(', ')}]`,
        s.replicas === undefined ? '–' : String(s.replicas),
        button,
      ];
      for (const c of cells) {
        const td = document.createElement('td');
        if (typeof c === 'string') td.textContent = c;
        else td.append(c);
        tr.append(td);
      }
      rows.push(tr);
    }
  }
  $('outputs-body').replaceChildren(...rows);
  $('outputs').hidden = rows.length === 0;
  $('outputs-empty').hidden = rows.length > 0;
  const more = $('outputs-more');
  more.hidden = total <= rows.length;
  more.textContent = `The first ${rows.length} of ${total} outputs are listed; "hearth results ${job} --out DIR" downloads them all.`;
}

type OutputEntry = ResultsIndex['shards'][number]['outputs'][number];

async function download(job: string, index: number, o: OutputEntry): Promise<void> {
  if (!api) return;
  const bytes = await api.output(job, index, o.name);
  if (bytes.byteLength !== o.bytes || (await sha256Hex(bytes)) !== o.sha256) {
    throw new HearthError(
      'blob/corrupt',
      `shard ${index} output "${o.name}": the bytes do not match the hub's hash.`,
    );
  }
  const file = new Blob([npy(o.dtype, o.shape, bytes) as Uint8Array<ArrayBuffer>], {
    type: 'application/octet-stream',
  });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(file);
  a.download = `${job}-${index}-${o.name.replace(/[^A-Za-z0-9._-]/g, '_')}.npy`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 30_000);
}

// ---- cancel ----

$('cancel').addEventListener('click', () => {
  const job = selected;
  if (!api || !job) return;
  if (
    !confirm(
      `Cancel job ${job}? Its shards stop being handed out and pending credit is voided; validated results stay.`,
    )
  ) {
    return;
  }
  api
    .cancel(job)
    .then((c) => {
      text('d-live', c.already ? 'already cancelled' : `cancelled: ${c.leasesDropped} lease(s) dropped`);
      soon();
    })
    .catch(failed);
});

// ---- submit ----

const filesInput = $<HTMLInputElement>('files');
function chosenFiles(): File[] {
  return [...(filesInput.files ?? []), ...dropped];
}
function listFiles(): void {
  $('file-list').replaceChildren(
    ...chosenFiles().map((f) => {
      const li = document.createElement('li');
      li.textContent = `${f.name} (${f.size} bytes)`;
      return li;
    }),
  );
}
filesInput.addEventListener('change', listFiles);
const drop = $('drop');
drop.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  dropped = [...dropped, ...(ev.dataTransfer?.files ?? [])];
  listFiles();
});

$<HTMLFormElement>('submit-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!api) return;
  const client = api;
  const status = $('submit-status');
  const button = $<HTMLButtonElement>('submit');
  status.className = '';
  button.disabled = true;
  (async () => {
    const plan = await planSubmit(chosenFiles());
    const job = await runSubmit(client, plan, (what) => {
      status.textContent = what;
    });
    status.className = 'ok';
    filesInput.value = '';
    dropped = [];
    listFiles();
    await refreshAll();
    select(job);
  })()
    .catch((e: unknown) => {
      status.textContent = `Not submitted: ${describe(e)}`;
      if (refusedToken(e)) failed(e);
    })
    .finally(() => {
      button.disabled = false;
    });
});

// The chart's series, named in its caption.
$('chart-caption').replaceChildren(
  swatch(JOB_COLOR, 'this job'),
  ' and ',
  swatch(HUB_COLOR, 'the whole hub'),
  ': validated shards per minute over the last hour (10 s steps).',
);
function swatch(color: string, label: string): HTMLElement {
  const s = document.createElement('span');
  const box = document.createElement('span');
  box.textContent = '■ ';
  box.style.color = color;
  box.setAttribute('aria-hidden', 'true');
  s.append(box, label);
  return s;
}

// A token kept from earlier in this tab's session signs in again on reload.
const kept = sessionStorage.getItem(TOKEN_KEY);
if (kept) {
  signIn(kept).catch((e: unknown) =>
    signOut(refusedToken(e) ? 'The hub no longer accepts the kept token; sign in again.' : describe(e)),
  );
}
