// `GET /v1/stats`: the hub's service levels over the last hour (hub/service-levels.ts, fed by the
// scheduler's events as they happen, never by scanning the store here) and, for the caller's jobs
// that are running or were active in that hour, their rate, latency and ETA.

import type { Principal } from '../hub/tokens.ts';
import { type HubStatsAnswer, JOB_LIST_LIMIT } from '../protocol/api.ts';
import { send } from './http.ts';
import type { Ctx } from './hub-context.ts';
import type { Route } from './routes.ts';

export function hubStats(ctx: Ctx, who: Principal | undefined): HubStatsAnswer {
  const h = ctx.levels.hub();
  // Running jobs first (oldest first, as they are leased), then those active in the window (at
  // most ServiceLevels' bound): the caller's only.
  const seen = new Set<string>();
  const jobs: HubStatsAnswer['jobs'][number][] = [];
  const candidates = [...ctx.store.runningJobs(), ...ctx.levels.followed().map((id) => ctx.store.getJob(id))];
  for (const job of candidates) {
    if (jobs.length >= JOB_LIST_LIMIT) break;
    if (!job || seen.has(job.id)) continue;
    seen.add(job.id);
    if (who?.kind === 'researcher' && job.owner !== who.name) continue;
    const { shards, validated, failed } = ctx.store.shardStats(job.id);
    const remaining = Math.max(0, shards - validated - failed);
    const l = ctx.levels.job(job.id, job.status === 'running' ? remaining : undefined);
    jobs.push({
      job: job.id,
      status: job.status,
      remaining,
      validatedPerMinute: l?.validatedPerMinute ?? 0,
      latency: l?.latency ?? { samples: 0 },
      ...(l?.etaMs !== undefined ? { etaMs: l.etaMs } : {}),
      ...(l ? { throughput: l.throughput } : {}),
    });
  }
  return {
    at: h.at,
    windowMs: h.windowMs,
    volunteers: ctx.volunteersConnected(),
    latency: h.latency,
    validatedPerMinute: h.validatedPerMinute,
    leases: h.leases,
    throughput: h.throughput,
    jobs,
  };
}

export const STATS_ROUTES: readonly Route[] = [
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/stats',
    auth: 'token',
    handle: ({ ctx, req, res, who }) => send(req, res, 200, hubStats(ctx, who)),
  },
];
