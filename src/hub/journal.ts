// The journal of a JournaledStore: what a group commit writes for each record changed since the
// last commit, kept as its final state, and how one entry is written to the SQLite file.
import type { SqliteStore } from './sqlite-store.ts';
import type { CreditStatus, LeaseRecord, LedgerEntry, ResultRecord, ResultStatus } from './store.ts';

/**
 * What a group commit writes for one record: its final state in the group, so a record changed
 * many times in a few milliseconds is written once, and a lease made and ended within one group
 * (the common case: a shard's whole cycle) is never written at all.
 */
export type Pending =
  | { readonly kind: 'put'; readonly write: (d: SqliteStore) => void }
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
 * Ids of leases already on the file, so that deleting one never written costs no write (a lease
 * made and ended within one group). Results and credits need no such set: they are only ever
 * added, then changed in place. (Kept for them before, written and never read, it grew by an entry
 * per result and per credit for the hub's life.)
 */
export interface OnDisk {
  readonly leases: Set<string>;
}

/** Replaces a key's entry and moves it to the end, so the group keeps the order of last writes. */
export function set(pending: Map<string, Pending>, key: string, p: Pending): void {
  pending.delete(key);
  pending.set(key, p);
}

/** Writes one pending record to the file `d` (inside the group's transaction). */
export function applyPending(d: SqliteStore, on: OnDisk, p: Pending): void {
  switch (p.kind) {
    case 'put':
      p.write(d);
      return;
    case 'lease':
      d.putLease(p.lease);
      on.leases.add(p.lease.id);
      return;
    case 'lease-delete':
      d.deleteLease(p.id);
      on.leases.delete(p.id);
      return;
    case 'result':
      d.putResult(p.result);
      return;
    case 'result-status':
      d.setResultStatus(p.id, p.status);
      return;
    case 'credit':
      d.addCredit(p.entry);
      return;
    case 'credit-status':
      d.setCreditStatus(p.volunteer, p.shard, p.status);
      return;
  }
}
