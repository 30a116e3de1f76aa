// `hearth volunteer --idle-exit S` (issue 10): idle means nothing running and no counter moving —
// a shard in progress is activity even when its counters stand still (a long shard used to end
// the command at the job's 0%).
import { describe, expect, it } from 'vitest';
import { idleDone, summarize } from '../../src/node/cli-volunteer.ts';
import type { VolunteerReport } from '../../src/node/volunteers.ts';

const report = (state: string, leases: number, over: Partial<NonNullable<VolunteerReport['stats']>> = {}) =>
  ({
    index: 0,
    volunteerId: 'v',
    state,
    stats: {
      leases,
      valid: 0,
      pending: 0,
      invalid: 0,
      inconclusive: 0,
      refused: 0,
      failed: 0,
      downloadedBytes: 0,
      peerBytes: 0,
      checkpoints: 0,
      resumed: 0,
      resumedSteps: 0,
      ...over,
    },
    error: null,
  }) satisfies VolunteerReport;

describe('hearth volunteer --idle-exit', () => {
  it('does not exit while a shard is running, however long its counters stand still', () => {
    // One lease taken 60 s ago, still computing: not idle.
    expect(idleDone([report('working', 1)], 0, 60_000, 5)).toBe(false);
    expect(idleDone([report('connected', 1), report('working', 1)], 0, 60_000, 5)).toBe(false);
  });

  it('exits once shards ran, none runs now, and nothing changed for S seconds', () => {
    expect(idleDone([report('connected', 1, { valid: 1 })], 0, 6_000, 5)).toBe(true);
    expect(idleDone([report('connected', 1, { valid: 1 })], 0, 4_000, 5)).toBe(false);
    // Nothing ran yet: keep waiting for work.
    expect(idleDone([report('connected', 0)], 0, 60_000, 5)).toBe(false);
  });

  it('summarizes the volunteers in one line', () => {
    expect(
      summarize([report('working', 2, { valid: 1, pending: 1, refused: 1 }), report('connected', 1)]),
    ).toBe(
      '2 volunteers (1 working, 1 connected) · 3 leases · 1 valid · 1 awaiting replicas · 1 rejected · 0 failed',
    );
  });
});
