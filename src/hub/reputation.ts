// How a volunteer's record moves with each judgement, and when it has earned trust. Pure
// functions over VolunteerRecord; the Scheduler stores what they return.
//
// Trust (single-replica shards, only for jobs that opt in with `adaptiveReplication`) needs a
// long valid streak *and* honeypots passed: a honeypot's answer is the hub's own, so identities
// that cost nothing to make cannot vouch for each other the way two fresh volunteers agreeing on
// replicas can. Both counts span every job the volunteer worked on.
import type { VolunteerRecord } from './store.ts';

export interface TrustPolicy {
  /** Valid results in a row (default 20). */
  readonly streak: number;
  /** Honeypots answered right, over the volunteer's whole record (default 3). */
  readonly honeypots: number;
}

/** A volunteer seen for the first time. */
export function freshVolunteer(id: string): VolunteerRecord {
  return { id, reputation: 0, streak: 0, valid: 0, invalid: 0 };
}

/**
 * The record after one judged result. A wrong answer costs five times what a right one earns
 * (times `weight`: a honeypot weighs more when failed) and ends the streak.
 *
 * @example
 * judged(v, { valid: true, weight: 1, honeypot: true }); // reputation +1, streak +1, honeypots +1
 */
export function judged(
  v: VolunteerRecord,
  how: { readonly valid: boolean; readonly weight: number; readonly honeypot?: boolean },
): VolunteerRecord {
  if (!how.valid) {
    return { ...v, reputation: v.reputation - 5 * how.weight, streak: 0, invalid: v.invalid + 1 };
  }
  return {
    ...v,
    reputation: v.reputation + how.weight,
    streak: v.streak + 1,
    valid: v.valid + 1,
    ...(how.honeypot ? { honeypots: (v.honeypots ?? 0) + 1 } : {}),
  };
}

/** Whether the volunteer may be given a single-replica shard of a job that allows it. */
export function trusted(v: VolunteerRecord, policy: TrustPolicy): boolean {
  return v.streak >= policy.streak && (v.honeypots ?? 0) >= policy.honeypots;
}

/** Whether the volunteer is blocked from leases altogether. */
export function blocked(v: VolunteerRecord, blockBelow: number): boolean {
  return v.reputation < blockBelow;
}
