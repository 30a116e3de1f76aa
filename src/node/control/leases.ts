// Handlers for lease messages: lease-request, heartbeat, result, shard-failed.
import type { HearthErrorCode } from '../../core/errors.ts';
import { creditToWire } from '../../protocol/credit.ts';
import { shardContextOf } from '../../protocol/kinds/index.ts';
import type { Handlers } from './handler.ts';

export const LEASE_HANDLERS: Handlers<'lease-request' | 'heartbeat' | 'result' | 'shard-failed'> = {
  'lease-request': (_m, c, ctx) => {
    const g = ctx.scheduler.lease(c.volunteer, c.caps, ctx.now());
    c.idle = !g;
    // Idle is when the volunteer's "awaiting agreement" count can catch up with shards that
    // other volunteers' results have judged since.
    if (!g) return { type: 'no-work', pending: ctx.scheduler.pendingResults(c.volunteer) };
    ctx.jobChanged?.(g.job);
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
  },
  heartbeat: (m, c, ctx) => {
    const l = ctx.scheduler.heartbeat(c.volunteer, m.lease, ctx.now());
    return { type: 'extended', lease: l.id, deadline: l.deadline };
  },
  result: async (m, c, ctx) => {
    const outcome = await ctx.scheduler.submitResult(c.volunteer, m.result, ctx.now(), { embed: c.embed });
    ctx.jobChanged?.(m.result.job);
    ctx.creditChanged?.(c.volunteer, outcome.status === 'pending' ? undefined : m.result.shard);
    return { type: 'ack', shard: m.result.shard, outcome: outcome.status };
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
