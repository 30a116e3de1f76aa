// The journal of a JournaledStore: what a group commit writes for each record changed since the
// last commit, kept as its final state, and the SQL writes (sqlite-store.ts WRITE_SQL) one entry
// becomes for the writer thread (sqlite-writer.ts).
import {
  creditParams,
  jobParams,
  leaseParams,
  outputParams,
  resultDoc,
  shardParams,
  volunteerParams,
} from './sqlite-store.ts';
import type { WriteOp } from './sqlite-writer.ts';
import type {
  CreditStatus,
  JobRecord,
  LeaseRecord,
  LedgerEntry,
  ResultRecord,
  ResultStatus,
  ShardRecord,
  VolunteerRecord,
} from './store.ts';

/**
 * What a group commit writes for one record: its final state in the group, so a record changed
 * many times in a few milliseconds is written once, and a lease made and ended within one group
 * (the common case: a shard's whole cycle) is never written at all. Plain data: a group crosses
 * to the writer thread as the writes it becomes.
 */
export type Pending =
  | { readonly kind: 'job'; readonly job: JobRecord }
  | { readonly kind: 'shard'; readonly shard: ShardRecord }
  | { readonly kind: 'volunteer'; readonly volunteer: VolunteerRecord }
  | { readonly kind: 'void-pending'; readonly job: string }
  | { readonly kind: 'lease'; readonly lease: LeaseRecord }
  | { readonly kind: 'lease-delete'; readonly id: string }
  | { readonly kind: 'result'; readonly result: ResultRecord }
  | { readonly kind: 'result-status'; readonly id: string; readonly status: ResultStatus }
  | { readonly kind: 'credit'; readonly entry: LedgerEntry }
  | {
      readonly kind: 'credit-status';
      readonly volunteer: string;
      readonly shard: string;
      readonly status: CreditStatus;
    };

/** One write of a transaction, applied to the pending group when the transaction commits. */
export type Op = (pending: Map<string, Pending>, onDisk: OnDisk) => void;

/**
 * Ids of leases already on the file (or in a group sent to the writer), so that deleting one never
 * written costs no write (a lease made and ended within one group). Results and credits need no
 * such set: they are only ever added, then changed in place.
 */
export interface OnDisk {
  readonly leases: Set<string>;
}

/** Replaces a key's entry and moves it to the end, so the group keeps the order of last writes. */
export function set(pending: Map<string, Pending>, key: string, p: Pending): void {
  pending.delete(key);
  pending.set(key, p);
}

/** The job a pending record belongs to (shard ids are `<job>/<n>`, result ids `<shard>#<volunteer>`). */
export function jobOfPending(p: Pending): string | undefined {
  switch (p.kind) {
    case 'job':
      return p.job.id;
    case 'shard':
      return p.shard.job;
    case 'void-pending':
      return p.job;
    case 'lease':
      return p.lease.job;
    case 'result':
      return p.result.job;
    case 'credit':
      return p.entry.job;
    case 'result-status':
      return p.id.slice(0, p.id.indexOf('/'));
    case 'credit-status':
      return p.shard.slice(0, p.shard.indexOf('/'));
    default:
      return undefined;
  }
}

/** The SQL writes of one pending record, appended to `out`; marks leases sent in `on`. */
export function writeOps(p: Pending, on: OnDisk, out: WriteOp[]): void {
  switch (p.kind) {
    case 'job':
      out.push({ sql: 'putJob', params: jobParams(p.job) });
      return;
    case 'shard':
      out.push({ sql: 'putShard', params: shardParams(p.shard) });
      return;
    case 'volunteer':
      out.push({ sql: 'putVolunteer', params: volunteerParams(p.volunteer) });
      return;
    case 'void-pending':
      out.push({ sql: 'voidPending', params: [p.job] });
      return;
    case 'lease':
      out.push({ sql: 'putLease', params: leaseParams(p.lease) });
      on.leases.add(p.lease.id);
      return;
    case 'lease-delete':
      out.push({ sql: 'deleteLease', params: [p.id] });
      on.leases.delete(p.id);
      return;
    case 'result': {
      const r = p.result;
      const doc = resultDoc(r);
      // A new result is a plain insert; one that replaces a result on the file rewrites its bytes.
      out.push({
        sql: 'addResult',
        params: [r.id, r.shard, r.volunteer, r.receivedAt, doc],
        unchanged: [
          { sql: 'replaceResult', params: [r.receivedAt, doc, r.id] },
          { sql: 'delOutputs', params: [r.id] },
        ],
      });
      r.outputs.forEach((o, i) => {
        out.push({ sql: 'putOutput', params: outputParams(r, o, i) });
      });
      return;
    }
    case 'result-status':
      out.push({ sql: 'setResultStatus', params: [p.status, p.id] });
      return;
    case 'credit':
      out.push({ sql: 'addCredit', params: creditParams(p.entry) });
      return;
    case 'credit-status':
      out.push({ sql: 'setCredit', params: [p.status, p.volunteer, p.shard] });
      return;
  }
}
