// `npm start` (`hearth start`): the whole of Hearth in one command. Builds the pages when they
// are stale, starts a hub on 127.0.0.1 with a fresh SQLite file in a folder it names, makes a
// researcher token, submits the demo jobs (an ONNX MLP, the WGSL heat-diffusion program, a WGSL
// Mandelbrot picture, a WGSL saxpy and a small `train` job: start-train.ts), starts headless
// Chromium volunteers, shows each job's progress as the hub pushes it, then downloads the
// validated results, writes the picture and the trained model, and prints a summary: shards,
// agreeing replicas, throughput, the training loss at its first and last round and every
// volunteer's credit.
//
// The operator running the command is the one saying yes for the headless volunteers
// (volunteers.ts); no page computes before that click.
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Address } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { HubApi } from '../client/hub-api.ts';
import { HearthError, isHearthError } from '../core/errors.ts';
import { createToken } from '../hub/tokens.ts';
import type { JobProgressAnswer } from '../protocol/api.ts';
import { readBalance } from './chain.ts';
import { downloadResults } from './cli-client.ts';
import { startDemoSite } from './demo-site.ts';
import { exampleJobs } from './example.ts';
import { type FractalSpec, fractalJob, fractalPng } from './fractal.ts';
import { type Hub, startHub } from './hub-server.ts';
import { finishTrain, lossEnds, type StartTrain, trainDemoJob } from './start-train.ts';
import { board, type JobRow, summaryText } from './start-view.ts';
import { DEFAULT_PAGES_DIR } from './static-pages.ts';
import { type AdapterChoice, launchVolunteers, type Volunteers } from './volunteers.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface StartOptions {
  /** The run's folder: hub.db, blobs/, results/, the picture (created; must be empty or new). */
  readonly dir: string;
  /** Headless Chromium volunteers (default 2). */
  readonly volunteers?: number;
  /** Small jobs (CI, a quick look): a few shards each. */
  readonly small?: boolean;
  /** Hub port on 127.0.0.1 (default 0: a free one). */
  readonly port?: number;
  readonly adapter?: AdapterChoice;
  /** Give up after this long (default 300 s). */
  readonly timeoutMs?: number;
  /** Where the pages are (default dist/ of this checkout, rebuilt when stale). */
  readonly pagesDir?: string;
  /** Progress and summary text; `tty` redraws the progress board in place. */
  readonly write?: (text: string) => void;
  readonly tty?: boolean;
  /** Aborts the run (Ctrl-C). */
  readonly signal?: AbortSignal;
  /**
   * Pay credit as tokens on a local chain (default true): anvil with HearthCredit deployed, the hub
   * signing vouchers and relaying claims, each volunteer signed in with a development wallet that
   * holds no ETH, a claim at the end and the balances in the summary.
   */
  readonly chain?: boolean;
}

/** One job of the run, as the summary reports it. */
export interface StartJob {
  readonly id: string;
  readonly name: string;
  readonly kind: string;
  readonly status: string;
  readonly shards: number;
  readonly validated: number;
  readonly failed: number;
  /** Results that agreed, summed over validated shards (2 per shard at replication 2). */
  readonly replicas: number;
  readonly flops: number;
  readonly seconds: number;
  readonly results: string;
  /** The training job's curve, files and sampled text. */
  readonly train?: StartTrain;
}

export interface StartCredit {
  readonly volunteer: string;
  readonly granted: bigint;
  readonly pending: bigint;
  readonly leases: number;
  /** With the chain: the address it signed in with, and its token balance after the claim. */
  readonly address?: string;
  readonly tokens?: bigint;
}

export interface StartSummary {
  readonly ok: boolean;
  /** Why not, when not ok. */
  readonly reason?: string;
  readonly dir: string;
  readonly hubUrl: string;
  readonly jobs: readonly StartJob[];
  readonly credits: readonly StartCredit[];
  readonly picture?: string;
  readonly seconds: number;
}

/** A running demo: its summary, and (with keep) the hub and volunteers still up. */
export interface StartRun {
  readonly summary: StartSummary;
  readonly hub: Hub;
  readonly token: string;
  readonly volunteers: Volunteers;
  /** With keep: a page on another origin that embeds <hearth-widget>. */
  readonly siteUrl?: string;
  /** Stops the volunteers and the hub. */
  close(): Promise<void>;
}

/** The newest modification time under `path` (files only), 0 when absent. */
function newest(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = 0;
  for (const e of readdirSync(path)) t = Math.max(t, newest(join(path, e)));
  return t;
}

/** True when the built pages are missing or older than what they are built from. */
export function pagesStale(pagesDir: string, root = ROOT): boolean {
  const built = join(pagesDir, 'volunteer', 'index.html');
  if (!existsSync(built)) return true;
  const sources = Math.max(
    newest(join(root, 'src')),
    newest(join(root, 'shaders')),
    newest(join(root, 'vite.config.ts')),
    newest(join(root, 'package-lock.json')),
  );
  return statSync(built).mtimeMs < sources;
}

/** The jobs of a run: name, manifest, blobs; the picture's spec. */
export function demoJobs(small: boolean): {
  jobs: { name: string; manifest: Record<string, unknown> }[];
  blobs: Map<string, Uint8Array>;
  fractal: FractalSpec;
} {
  const ex = exampleJobs(
    small
      ? { rows: 16, heat: { size: 64, steps: 40, bands: 2 } }
      : { rows: 64, heat: { size: 256, steps: 500 } },
  );
  const fr = fractalJob(small ? { width: 96, height: 64, bands: 2 } : { width: 384, height: 256, bands: 8 });
  const tr = trainDemoJob(small);
  const blobs = new Map([...ex.blobs, ...fr.blobs, ...tr.blobs]);
  const named = (file: string) => {
    const j = ex.jobs.find((x) => x.file === file);
    if (!j) throw new HearthError('input/invalid', `no example job ${file}`);
    return j.manifest;
  };
  return {
    jobs: [
      { name: 'mlp', manifest: named('onnx-job.json') },
      { name: 'heat', manifest: named('heat-job.json') },
      { name: 'mandelbrot', manifest: fr.manifest },
      { name: 'saxpy', manifest: named('wgsl-job.json') },
      { name: 'tiny-lm', manifest: tr.manifest },
    ],
    blobs,
    fractal: fr.spec,
  };
}

const TERMINAL = new Set(['done', 'failed', 'cancelled']);

/**
 * Runs the demo to its summary. With `keep`, the hub and volunteers stay up: the caller closes
 * the returned run; otherwise they are closed before this returns.
 */
export async function runStart(opts: StartOptions & { keep?: boolean }): Promise<StartRun> {
  const write = opts.write ?? ((t: string) => process.stdout.write(t));
  const t0 = Date.now();
  const dir = opts.dir;
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new HearthError('input/invalid', `${dir} is not empty: give a new folder (--dir) for this run.`);
  }
  mkdirSync(dir, { recursive: true });
  const pagesDir = opts.pagesDir ?? DEFAULT_PAGES_DIR;
  if (pagesStale(pagesDir)) {
    write(`building the pages (vite) into ${relative(process.cwd(), pagesDir) || pagesDir} …\n`);
    const { build } = await import('vite');
    await build({ configFile: join(ROOT, 'vite.config.ts'), logLevel: 'error', build: { outDir: pagesDir } });
  }
  // With --keep, a site on another origin that embeds the widget, for a person to try.
  const site = opts.keep ? await startDemoSite() : undefined;
  const chain = opts.chain === false ? undefined : await localCreditChain(write);
  const hub = await startHub({
    dbPath: join(dir, 'hub.db'),
    blobDir: join(dir, 'blobs'),
    host: '127.0.0.1',
    port: opts.port ?? 0,
    pagesDir,
    allowedOrigins: site ? [site.origin] : [],
    maxBlobBytes: 64 * 2 ** 20,
    ...(chain ? { wallet: chain.wallet } : {}),
  });
  site?.setHub(hub.url);
  let volunteers: Volunteers | undefined;
  const closeAll = async () => {
    await volunteers?.close().catch(() => {});
    await hub.close();
    await site?.close();
    await chain?.anvil.close();
  };
  try {
    const { token } = createToken(hub.store, 'demo');
    const api = new HubApi({ hub: hub.url, token });
    write(`hub ${hub.url} · folder ${dir}\n`);

    const demo = demoJobs(opts.small === true);
    for (const [sha, bytes] of demo.blobs) await api.putBlob(sha, Uint8Array.from(bytes));
    const rows: JobRow[] = [];
    for (const j of demo.jobs) {
      const { job } = await api.submit(JSON.stringify(j.manifest));
      rows.push({ id: job, name: j.name, kind: String(j.manifest['kind']), progress: undefined });
    }
    write(`submitted ${rows.length} jobs; starting ${opts.volunteers ?? 2} headless Chromium volunteers …\n`);
    const count = opts.volunteers ?? 2;
    // Fresh keys with no ETH at all: claiming through the hub's relayer costs them nothing.
    const walletKeys = chain ? Array.from({ length: count }, () => generatePrivateKey()) : [];
    volunteers = await launchVolunteers({
      hubUrl: hub.url,
      count,
      adapter: opts.adapter ?? 'auto',
      ...(chain
        ? { wallets: { rpcUrl: chain.anvil.rpcUrl, chainId: chain.anvil.chainId, keys: walletKeys } }
        : {}),
    });
    const v = volunteers;
    const addresses = new Map<number, string>();
    // Each volunteer signs in with its wallet once its page is connected (its credit, earned
    // before or after, all goes to that address).
    const signIns = chain
      ? Promise.all(
          Array.from({ length: count }, async (_, i) => {
            for (let tries = 0; tries < 600; tries++) {
              const r = (await v.report())[i];
              if (r && ['connected', 'idle', 'working'].includes(r.state)) break;
              await new Promise((res) => setTimeout(res, 100));
            }
            addresses.set(i, await v.signIn(i));
          }),
        )
      : Promise.resolve([]);
    let signInError: unknown;
    signIns.catch((e: unknown) => {
      signInError = e;
    });

    // Progress: each job's as the hub pushes it; the board redrawn a few times a second.
    const started = Date.now();
    const finishedAt = new Map<string, number>();
    const watchers = rows.map(async (row) => {
      for await (const p of api.watch(row.id, opts.signal)) {
        // A train job's rounds and losses: read again when its shards change (a round closed,
        // a slot judged), not on a timer.
        const changed = p.validated !== row.progress?.validated || p.shards !== row.progress?.shards;
        if (row.kind === 'train' && (changed || TERMINAL.has(p.status))) row.train = await api.train(row.id);
        row.progress = p;
        if (TERMINAL.has(p.status) && !finishedAt.has(row.id)) finishedAt.set(row.id, Date.now());
      }
    });
    const watching = Promise.all(watchers);
    let watchError: unknown;
    watching.catch((e: unknown) => {
      watchError = e;
    });
    const deadline = started + (opts.timeoutMs ?? 300_000);
    let reason: string | undefined;
    let drawn = 0;
    let lastPlain = '';
    let lastPlainAt = 0;
    for (;;) {
      const reports = await v.report();
      const text = board(rows, reports, Date.now() - started);
      if (opts.tty) {
        // Up over the last board, then the new one.
        write(`${drawn > 0 ? `\x1b[${drawn}F` : ''}${text.map((l) => `\x1b[2K${l}`).join('\n')}\n`);
        drawn = text.length;
      } else {
        const key = rows.map((r) => `${r.progress?.validated}/${r.progress?.status}`).join(',');
        if (key !== lastPlain || Date.now() - lastPlainAt > 10_000) {
          write(`${text.join('\n')}\n`);
          lastPlain = key;
          lastPlainAt = Date.now();
        }
      }
      if (rows.every((r) => r.progress && TERMINAL.has(r.progress.status))) break;
      const broken = reports.find((r) => r.error);
      if (broken) {
        reason = `volunteer ${broken.index} failed: ${broken.error}`;
        break;
      }
      if (watchError) {
        reason = `following the jobs failed: ${watchError instanceof Error ? watchError.message : watchError}`;
        break;
      }
      if (signInError) {
        reason = `a volunteer could not sign in with its wallet: ${signInError instanceof Error ? signInError.message : signInError}`;
        break;
      }
      if (opts.signal?.aborted) {
        reason = 'interrupted';
        break;
      }
      if (Date.now() > deadline) {
        const open = rows.filter((r) => !r.progress || !TERMINAL.has(r.progress.status)).map((r) => r.name);
        reason = `not finished after ${Math.round((opts.timeoutMs ?? 300_000) / 1000)} s: ${open.join(', ')} still running`;
        break;
      }
      await new Promise((r) => setTimeout(r, opts.tty ? 250 : 500));
    }

    // Results, the picture, credits.
    // A train job's files and sampled text are made while the credits are claimed.
    const entries: (StartJob | Promise<StartJob>)[] = [];
    let picture: string | undefined;
    for (const [i, row] of rows.entries()) {
      const p: JobProgressAnswer = row.progress ?? (await api.progress(row.id));
      const out = join(dir, 'results', row.name);
      const manifest = demo.jobs[i]?.manifest ?? {};
      const common = {
        id: row.id,
        name: row.name,
        kind: row.kind,
        status: p.status,
        shards: p.shards,
        validated: p.validated,
        failed: p.failed,
        seconds: ((finishedAt.get(row.id) ?? Date.now()) - started) / 1000,
        results: out,
      };
      if (row.kind === 'train') {
        // `hearth results` for a train job: the trained model and its curve, not per-shard Δs.
        const index = await api.results(row.id);
        const finishing = finishTrain(api, row.id, out, { sample: p.status === 'done' });
        // Awaited below; a failure meanwhile is not an unhandled rejection.
        finishing.catch(() => {});
        entries.push(
          finishing.then((train) => ({
            ...common,
            replicas: index.shards.reduce((n, s) => n + (s.replicas ?? 0), 0),
            flops: train.flops,
            train,
          })),
        );
        continue;
      }
      const got = await downloadResults(api, row.id, out);
      entries.push({
        ...common,
        replicas: got.shards.reduce((n, s) => n + (s.replicas ?? 0), 0),
        flops: Number(manifest['flopsPerShard'] ?? 0) * p.validated,
      });
      if (row.name === 'mandelbrot' && p.status === 'done') {
        const bands = [];
        for (const s of [...got.shards].sort((a, b) => a.index - b.index)) {
          bands.push(await api.output(row.id, s.index, 'iters'));
        }
        picture = join(dir, 'mandelbrot.png');
        writeFileSync(picture, fractalPng(demo.fractal, bands));
      }
    }
    const credits: StartCredit[] = [];
    if (chain && !reason) {
      await signIns;
      // Everything is judged: settle the ledger's last group so the vouchers see all of it.
      await hub.store.settled();
    }
    for (const r of await v.report()) {
      if (!r.volunteerId) continue;
      // A volunteer the hub never credited nor judged is a 404: it earned nothing.
      const c = await api.credits(r.volunteerId).catch((e: unknown) => {
        if (isHearthError(e) && e.details.status === 404) return { granted: 0n, pending: 0n };
        throw e;
      });
      const address = addresses.get(r.index);
      let tokens: bigint | undefined;
      if (chain && address && !reason) {
        // The claim the volunteer's Claim button makes: relayed by the hub, paid by its key.
        await api.relayClaim(address).catch((e: unknown) => {
          if (!isHearthError(e) || e.details.code !== 'voucher/nothing-to-claim') throw e;
        });
        tokens = await readBalance(chain.reader, chain.wallet.contract, address as Address);
      }
      credits.push({
        volunteer: r.volunteerId,
        granted: c.granted,
        pending: c.pending,
        leases: r.stats?.leases ?? 0,
        ...(address ? { address } : {}),
        ...(tokens === undefined ? {} : { tokens }),
      });
    }
    const jobs = await Promise.all(entries);
    if (!reason) {
      const bad = jobs.filter((j) => j.status !== 'done' || j.validated !== j.shards);
      if (bad.length > 0) reason = `${bad.map((j) => `${j.name} ${j.status}`).join(', ')}`;
      else if (!picture) reason = 'the picture was not written';
      else if (jobs.some((j) => j.train && !lossFell(j.train))) {
        reason = 'the training job’s validation loss did not fall from its first round to its last';
      } else if (chain && credits.some((c) => c.tokens !== c.granted)) {
        reason = 'a volunteer’s token balance is not the credit it was granted';
      }
    }
    const summary: StartSummary = {
      ok: reason === undefined,
      ...(reason ? { reason } : {}),
      dir,
      hubUrl: hub.url,
      jobs,
      credits,
      ...(picture ? { picture } : {}),
      seconds: (Date.now() - t0) / 1000,
    };
    write(`${summaryText(summary)}\n`);
    if (!opts.keep) await closeAll();
    return {
      summary,
      hub,
      token,
      volunteers: v,
      ...(site ? { siteUrl: `${site.origin}/` } : {}),
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    if (isHearthError(e)) throw e;
    throw new HearthError('shard/failed', `the demo failed: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
}

/** True when the validation loss at the last round is below the first's. */
function lossFell(t: StartTrain): boolean {
  const { first, last } = lossEnds(t);
  return first?.valLoss !== undefined && last?.valLoss !== undefined && last.round > first.round
    ? last.valLoss < first.valLoss
    : false;
}

/** A local chain for the demo: anvil, HearthCredit deployed, the hub's signer and relayer keys. */
async function localCreditChain(write: (t: string) => void) {
  const { startAnvil, walletFor, deployHearthCredit } = await import('./chain.ts');
  const anvil = await startAnvil();
  try {
    const [deployer, relayer] = anvil.accounts;
    if (!deployer || !relayer)
      throw new HearthError('chain/anvil', 'anvil started with fewer than two accounts.');
    const signerKey = generatePrivateKey();
    const owner = await walletFor(anvil.rpcUrl, deployer.privateKey);
    const contract = await deployHearthCredit(owner, {
      owner: owner.account.address,
      signer: privateKeyToAccount(signerKey).address,
    });
    write(`chain ${anvil.rpcUrl} (id ${anvil.chainId}) · HearthCredit ${contract}\n`);
    return {
      anvil,
      reader: owner,
      wallet: {
        chainId: anvil.chainId,
        contract,
        signerKey,
        relayer: { rpcUrl: anvil.rpcUrl, key: relayer.privateKey },
      },
    };
  } catch (e) {
    await anvil.close();
    throw e;
  }
}
