// Handlers for all-reduce messages: allreduce-report (accountability), allreduce-fallback (the
// hub averages a round whose ring failed).
import { HearthError } from '../../core/errors.ts';
import { verifyContribution } from '../../hub/allreduce-audit.ts';
import type { Handlers } from './handler.ts';

export const ALLREDUCE_HANDLERS: Handlers<'allreduce-report' | 'allreduce-fallback'> = {
  'allreduce-report': async (m, c, ctx) => {
    const me = c.peerId;
    const allreduce = ctx.allreduce;
    if (!allreduce || !me) {
      throw new HearthError('control/unsupported', `${m.type}: this hub keeps no all-reduce reports.`);
    }
    if (!m.group.includes(me)) {
      throw new HearthError(
        'input/invalid',
        `message.group: this connection's peer id ${me} is not in the group of ${m.type} ${m.round}.`,
        {
          details: { path: 'message.group' },
        },
      );
    }
    const limit = allreduce.reportsPerMinute ?? 60;
    const t = Date.now();
    while (c.reported.length > 0 && (c.reported[0] ?? t) <= t - 60_000) c.reported.shift();
    if (c.reported.length >= limit) {
      throw new HearthError(
        'control/rate-limited',
        `${m.type}: over ${limit} reports a minute on this connection.`,
        {
          details: { limit },
        },
      );
    }
    c.reported.push(t);
    const verdicts = await Promise.all(
      m.contributions.map((x) => verifyContribution(m.round, x, ctx.issued)),
    );
    const judged = m.contributions.map((x, i) => ({ ...x, verdict: verdicts[i] ?? 'unknown-peer' }));
    allreduce.record({
      round: m.round,
      reporter: c.volunteer,
      reporterPeer: me,
      receivedAt: ctx.now(),
      group: m.group,
      contributors: m.contributors,
      contributions: judged,
      mean: m.mean,
      dropped: m.dropped,
    });
    const flagged = judged
      .filter((f) => f.verdict !== 'valid')
      .map((f) => ({ peer: f.peer, verdict: f.verdict }));
    return { type: 'allreduce-ack', round: m.round, flagged };
  },
  'allreduce-fallback': (m, c, ctx) => {
    const me = c.peerId;
    const rounds = ctx.allreduce?.rounds;
    if (!rounds || !me)
      throw new HearthError('control/unsupported', `${m.type}: this hub does not average rounds.`);
    const t = rounds.join({
      round: m.round,
      group: m.group,
      elements: m.elements,
      sha256: m.sha256,
      peer: me,
      volunteer: c.volunteer,
    });
    return { type: 'allreduce-ticket', round: m.round, ticket: t.ticket, deadline: t.deadline };
  },
};
