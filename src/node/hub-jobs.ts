// The job routes' work: a manifest checked and submitted (blob sizes, the kind's checks with the
// hub's resources, honeypots on its device), and validated results read back.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { isHearthError } from '../core/errors.ts';
import { HUB_KINDS, hubKindOf } from '../hub/kinds/index.ts';
import type { SubmitEnv } from '../hub/kinds/kind.ts';
import { type OracleRunner, withHubHoneypots } from '../hub/oracle.ts';
import { type JobRecord, jobOf } from '../hub/store.ts';
import type { Principal } from '../hub/tokens.ts';
import { trainView } from '../hub/train-view.ts';
import { JOB_LIST_LIMIT, type JobList } from '../protocol/api.ts';
import { type Manifest, manifestTensors, parseManifest, submitBlobs } from '../protocol/kinds/index.ts';
import { tensorBytes } from '../protocol/shard.ts';
import { httpError, notFound, send } from './http.ts';
import { type Ctx, readJson } from './hub-context.ts';
import type { Route } from './routes.ts';

/**
 * Compiles a WGSL job's kernel and builds its pipelines on the hub's own device at submit (Dawn,
 * made on first use), so a syntax error is refused with its line and column; a hub without a
 * device (no Vulkan driver) checks declarations only.
 */
export function wgslChecker(): NonNullable<SubmitEnv['checkWgsl']> {
  let compiler: Promise<import('../gpu/context.ts').GpuContext> | undefined;
  return async (source, layouts) => {
    compiler ??= (async () => {
      const [{ GpuRuntime }, { dawnGpu }] = await Promise.all([
        import('../gpu/context.ts'),
        import('./dawn.ts'),
      ]);
      return new GpuRuntime({ gpu: dawnGpu() }).context();
    })();
    let gpu: import('../gpu/context.ts').GpuContext;
    try {
      gpu = await compiler;
    } catch {
      compiler = undefined;
      return;
    }
    const { buildWgslPipelines } = await import('../worker/runners/wgsl.ts');
    await buildWgslPipelines(gpu, 'job kernel', source, layouts);
  };
}

/** Every blob a manifest names that a volunteer (or the scheduler, for honeypot answers) needs. */
export function manifestBlobs(m: Manifest): string[] {
  return submitBlobs(m);
}

export async function submitJob(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  who: Principal,
): Promise<void> {
  const body = await readJson(ctx, req);
  let manifest: Manifest = parseManifest(body);
  const missing = manifestBlobs(manifest).filter((h) => !ctx.blobs.has(h));
  if (missing.length > 0) {
    throw httpError(
      'blob/missing',
      `blob ${missing[0]} is not uploaded${missing.length > 1 ? ` (nor ${missing.length - 1} more)` : ''}; PUT /v1/blobs/<sha256> first.`,
      { status: 400, details: { missing: missing.slice(0, 32) } },
    );
  }
  checkTensorSizes(ctx, manifest);
  // The kind's own checks with the hub's resources (its model reader, its device): a job that
  // every volunteer would fail is refused here, with the reason, rather than accepted. A refusal
  // (a HearthError) is answered by its code (http.ts responseOf).
  manifest = await hubKindOf(HUB_KINDS, manifest.kind).prepare(manifest, {
    blob: (sha) => {
      const b = ctx.blobs.read(sha);
      return b ? new Uint8Array(b) : undefined;
    },
    write: (bytes) => ctx.blobs.writeSync(bytes),
    ...(ctx.checkWgsl ? { checkWgsl: ctx.checkWgsl } : {}),
  });
  if (manifest.autoHoneypots) manifest = await withOracleHoneypots(ctx, manifest);
  // The owner is the token's name; the admin's jobs have none (only the admin sees them).
  const job = ctx.scheduler.submit(manifest, Date.now(), {
    owner: who.kind === 'researcher' ? who.name : undefined,
    budget: who.kind === 'researcher' ? ctx.store.getToken(who.name)?.budget : undefined,
  });
  ctx.workAvailable();
  send(req, res, 201, { job });
}

/**
 * Every tensor a manifest names against its uploaded blob: the bytes its dtype and shape need, or
 * 400 naming the field. Checked once here so that no shard fails on every volunteer for it.
 */
function checkTensorSizes(ctx: Ctx, m: Manifest): void {
  for (const { path, tensor } of manifestTensors(m)) {
    const want = tensorBytes(tensor.dtype, tensor.shape);
    const got = ctx.blobs.size(tensor.sha256);
    if (got !== undefined && got !== want) {
      throw httpError(
        'input/invalid',
        `${path}: ${tensor.dtype}[${tensor.shape.join(', ')}] needs ${want} bytes, but blob ${tensor.sha256} has ${got}; upload the tensor's raw little-endian bytes, or fix its dtype or shape.`,
        { details: { path, expected: want, got } },
      );
    }
  }
}

/**
 * The manifest with `autoHoneypots` of its shards run on the hub's own device (hub/oracle.ts).
 * The researcher waits for them: they are a few shards, and a job whose honeypots failed to
 * compute is refused rather than run without the check it asked for. A failure of the job's own
 * (its kernel, its model) is the researcher's: 400. A failure of the hub's device is the hub's:
 * 503, and the job may be submitted again.
 */
async function withOracleHoneypots(ctx: Ctx, m: Manifest): Promise<Manifest> {
  let runner: OracleRunner;
  try {
    runner = await ctx.oracle();
  } catch (e) {
    throw httpError(
      'gpu/unavailable',
      `manifest.autoHoneypots: this hub has no device to compute honeypots on (${(e as Error).message}); give honeypots with known answers in the manifest instead.`,
    );
  }
  try {
    return await withHubHoneypots(m, {
      runner,
      blobs: {
        read: (sha) => ctx.blobs.read(sha),
        write: async (bytes) => {
          const sha = createHash('sha256').update(bytes).digest('hex');
          if (!ctx.blobs.has(sha)) await ctx.blobs.receive(Readable.from([Buffer.from(bytes)]), sha);
          return sha;
        },
      },
    });
  } catch (e) {
    if (isHearthError(e) && !HUB_SIDE_FAILURES.has(e.code)) {
      throw httpError(e.code, `manifest.autoHoneypots: running a shard on the hub failed: ${e.message}`, {
        status: 400,
        details: e.details,
      });
    }
    const why = e instanceof Error ? e.message : String(e);
    throw httpError(
      isHearthError(e) ? e.code : 'gpu/unavailable',
      `manifest.autoHoneypots: the hub's device failed while computing honeypots (${why}); try again, or give honeypots with known answers in the manifest.`,
      { status: 503 },
    );
  }
}

/** Errors of the hub's own device or process, not of the researcher's job: 503, not 400. */
const HUB_SIDE_FAILURES: ReadonlySet<string> = new Set([
  'gpu/unavailable',
  'gpu/device-lost',
  'gpu/out-of-memory',
  'gpu/validation',
  'shard/timeout',
  'shard/cancelled',
  'shard/failed',
  'store/failed',
  'store/unavailable',
  'store/conflict',
  'blob/missing',
]);

export function resultsIndex(ctx: Ctx, id: string) {
  const job = jobOf(ctx.store, id);
  return {
    job: id,
    status: job.status,
    kind: job.manifest.kind,
    shards: ctx.scheduler.results(id).map((r) => ({
      shard: r.shard,
      index: r.index,
      replicas: r.replicas,
      outputs: r.outputs.map((o) => ({
        name: o.name,
        dtype: o.dtype,
        shape: o.shape,
        sha256: o.sha256,
        bytes: o.data.byteLength,
      })),
    })),
  };
}

export function sendOutput(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  shard: string,
  output: string,
): void {
  const byIndex = /^\d{1,9}$/.test(shard);
  const r = ctx.scheduler.result(id, byIndex ? { index: Number(shard) } : { id: shard });
  if (!r) throw notFound(`a validated result for shard ${shard} of job ${id}`);
  const o = r.outputs.find((x) => x.name === output);
  if (!o) throw notFound(`output "${output}" of shard ${r.shard}`);
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': o.data.byteLength,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    etag: `"${o.sha256}"`,
    'x-hearth-dtype': o.dtype,
    'x-hearth-shape': o.shape.join(','),
    'x-hearth-sha256': o.sha256,
  });
  res.end(req.method === 'HEAD' ? undefined : Buffer.from(o.data));
}

/** The job `id` if the caller may see it: the admin sees every job, a researcher its own. */
function ownJob(ctx: Ctx, who: Principal | undefined, id: string): JobRecord {
  const job = ctx.store.getJob(id);
  if (!job) throw notFound(`job ${id}`);
  if (who?.kind === 'researcher' && job.owner !== who.name) {
    throw httpError('http/forbidden', `job ${id} was not submitted with this token.`, {
      details: { job: id },
    });
  }
  return job;
}

/** The jobs `who` may see: a researcher its own, the admin every job; oldest first. */
export function visibleJobs(ctx: Ctx, who: Principal | undefined): JobRecord[] {
  const all = ctx.store.listJobs();
  return who?.kind === 'researcher' ? all.filter((j) => j.owner === who.name) : all;
}

/** `GET /v1/jobs`: the caller's jobs, newest first, at most JOB_LIST_LIMIT, with their counts. */
export function jobList(ctx: Ctx, who: Principal | undefined): JobList {
  const mine = visibleJobs(ctx, who);
  const jobs = mine
    .slice(-JOB_LIST_LIMIT)
    .reverse()
    .map((j) => {
      const { shards, validated, failed, inFlight, done } = ctx.store.shardStats(j.id);
      return {
        job: j.id,
        status: j.status,
        kind: j.manifest.kind,
        createdAt: j.createdAt,
        shards,
        validated,
        failed,
        inFlight,
        done,
        ...(j.owner !== undefined ? { owner: j.owner } : {}),
      };
    });
  return { jobs, total: mine.length };
}

/** Job routes: list, submit, progress, cancel, results. */
export const JOB_ROUTES: readonly Route[] = [
  {
    methods: ['POST'],
    path: '/v1/jobs',
    auth: 'token',
    handle: ({ ctx, req, res, who }) => submitJob(ctx, req, res, who ?? { kind: 'admin' }),
  },
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/jobs',
    auth: 'token',
    handle: ({ ctx, req, res, who }) => send(req, res, 200, jobList(ctx, who)),
  },
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/jobs/:id',
    auth: 'token',
    handle: ({ ctx, req, res, params, who }) => {
      const id = params.id ?? '';
      ownJob(ctx, who, id);
      send(req, res, 200, ctx.scheduler.progress(id));
    },
  },
  {
    methods: ['DELETE'],
    path: '/v1/jobs/:id',
    auth: 'token',
    handle: ({ ctx, req, res, params, who }) => {
      const id = params.id ?? '';
      const job = ownJob(ctx, who, id);
      if (job.status === 'done' || job.status === 'failed') {
        throw httpError('http/conflict', `job ${id} is already ${job.status}; nothing to cancel.`, {
          details: { job: id, status: job.status },
        });
      }
      send(req, res, 200, ctx.scheduler.cancel(id, Date.now()));
      ctx.events.changed(id);
    },
  },
  {
    methods: ['GET'],
    path: '/v1/jobs/:id/events',
    auth: 'token',
    handle: ({ ctx, res, params, who }) => {
      const id = params.id ?? '';
      ownJob(ctx, who, id);
      ctx.events.watch(id, res, () => ctx.scheduler.progress(id));
    },
  },
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/jobs/:id/results',
    auth: 'token',
    handle: ({ ctx, req, res, params, who }) => {
      ownJob(ctx, who, params.id ?? '');
      send(req, res, 200, resultsIndex(ctx, params.id ?? ''));
    },
  },
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/jobs/:id/train',
    auth: 'token',
    handle: ({ ctx, req, res, params, who }) => {
      const id = params.id ?? '';
      ownJob(ctx, who, id);
      send(req, res, 200, trainView(ctx.store, id));
    },
  },
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/jobs/:id/results/:shard/:output',
    auth: 'token',
    handle: ({ ctx, req, res, params, who }) => {
      ownJob(ctx, who, params.id ?? '');
      sendOutput(ctx, req, res, params.id ?? '', params.shard ?? '', params.output ?? '');
    },
  },
];
