// Handlers for lease messages: lease-request, lease-batch, heartbeat, result, results, shard-failed.
import { type HearthErrorCode, isHearthError } from '../../core/errors.ts';
import type { LeaseGrant } from '../../hub/scheduler.ts';
import {
  type BatchAck,
  CONTROL_LIMITS,
  FINAL_REFUSALS,
  type HubBody,
  type RequestOf,
} from '../../protocol/control.ts';
import { creditToWire } from '../../protocol/credit.ts';
import { shardContextOf } from '../../protocol/kinds/index.ts';
import type { Connection, HandlerContext, Handlers } from './handler.ts';

/** A grant as the `lease` message (and each of `leases`) carries it. */
function leaseBody(g: LeaseGrant, ctx: HandlerContext): HubBody<'lease'> {
  const m = ctx.manifestOf?.(g.job);
  return {
    type: 'lease',
    lease: g.lease.id,
    shard: g.shard,
    job: g.job,
    ...(m ? shardContextOf(m) : {}),
    ...(m ? { credit: creditToWire(ctx.scheduler.shardCredit(m, g.work)) } : {}),
    work: g.work,
    deadline: g.lease.deadline,
  };
}

/** Takes one result; the volunteer's and the job's watchers are told. Throws a refusal. */
async function take(
  r: RequestOf<'result'>['result'],
  c: Connection,
  ctx: HandlerContext,
): Promise<HubBody<'ack'>> {
  const outcome = await ctx.scheduler.submitResult(c.volunteer, r, ctx.now(), { embed: c.embed });
  ctx.jobChanged?.(r.job);
  ctx.creditChanged?.(c.volunteer, outcome.status === 'pending' ? undefined : r.shard);
  return { type: 'ack', shard: r.shard, outcome: outcome.status };
}

export const LEASE_HANDLERS: Handlers<
  'lease-request' | 'lease-batch' | 'heartbeat' | 'result' | 'results' | 'shard-failed'
> = {
  'lease-request': (_m, c, ctx) => {
    const g = ctx.scheduler.lease(c.volunteer, c.caps, ctx.now());
    c.idle = !g;
    // Idle is when the volunteer's "awaiting agreement" count can catch up with shards that
    // other volunteers' results have judged since.
    if (!g) return { type: 'no-work', pending: ctx.scheduler.pendingResults(c.volunteer) };
    ctx.jobChanged?.(g.job);
    return leaseBody(g, ctx);
  },
  'lease-batch': (m, c, ctx) => {
    const leases: Omit<HubBody<'lease'>, 'type'>[] = [];
    const jobs = new Set<string>();
    const now = ctx.now();
    // One lease per shard, as lease-request gives them: the scheduler's rules hold for each.
    while (leases.length < m.max) {
      const g = ctx.scheduler.lease(c.volunteer, c.caps, now);
      if (!g) break;
      const { type: _, ...body } = leaseBody(g, ctx);
      leases.push(body);
      jobs.add(g.job);
    }
    c.idle = leases.length === 0;
    if (leases.length === 0) return { type: 'no-work', pending: ctx.scheduler.pendingResults(c.volunteer) };
    for (const j of jobs) ctx.jobChanged?.(j);
    return { type: 'leases', leases };
  },
  heartbeat: (m, c, ctx) => {
    const l = ctx.scheduler.heartbeat(c.volunteer, m.lease, ctx.now());
    return { type: 'extended', lease: l.id, deadline: l.deadline };
  },
  result: (m, c, ctx) => take(m.result, c, ctx),
  results: async (m, c, ctx) => {
    // Each result is its own change, as if sent alone; they share the group commit, and the
    // answer leaves once every one of them is durable (or refused).
    const acks = await Promise.all(
      m.results.map(async (r): Promise<BatchAck> => {
        try {
          const { shard, outcome } = await take(r, c, ctx);
          return { shard, outcome };
        } catch (e) {
          // A refusal of this result alone; anything else (the store failed) fails the message.
          if (!isHearthError(e) || !FINAL_REFUSALS.has(e.code)) throw e;
          return {
            shard: r.shard,
            error: { code: e.code, message: e.message.slice(0, CONTROL_LIMITS.maxErrorChars) },
          };
        }
      }),
    );
    return { type: 'acks', acks };
  },
  'shard-failed': async (m, c, ctx) => {
    const r = await ctx.scheduler.reportFailure(
      c.volunteer,
      m.shard,
      // The code is the volunteer's word: validation.ts only counts it, never trusts it.
      { code: m.code as HearthErrorCode, message: m.message },
      ctx.now(),
    );
    ctx.jobChanged?.();
    return { type: 'failure-noted', shard: m.shard, outcome: r.status };
  },
};
