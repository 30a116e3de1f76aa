// The credit ledger: one entry per (volunteer, shard), pending until the shard is judged, then
// granted or void. The entry's key is what makes credit exactly-once (DESIGN.md invariant 2): a
// second result for the same shard by the same volunteer cannot add a second entry. Runs inside
// the Scheduler's transactions.
import type { HubStore } from './store.ts';

export class Ledger {
  readonly #store: HubStore;

  constructor(store: HubStore) {
    this.#store = store;
  }

  /** Records pending credit for a result; false when the volunteer already has an entry for the shard. */
  pending(volunteer: string, shard: string, job: string, credits: number): boolean {
    return this.#store.addCredit({ volunteer, shard, job, credits, status: 'pending' });
  }

  /** Grants or voids a result's pending credit once its shard is judged. */
  settle(volunteer: string, shard: string, granted: boolean): void {
    this.#store.setCreditStatus(volunteer, shard, granted ? 'granted' : 'void');
  }

  /** Voids every pending entry of a job (cancelled, or failed as a whole); returns how many. */
  voidJob(job: string): number {
    return this.#store.voidPendingCredit(job);
  }

  /** A volunteer's credit: pending (awaiting validation) and granted, and how many results wait. */
  of(volunteer: string): { pending: number; granted: number; pendingResults: number } {
    let pending = 0;
    let granted = 0;
    let pendingResults = 0;
    for (const e of this.#store.ledger(volunteer)) {
      if (e.status === 'pending') {
        pending += e.credits;
        pendingResults++;
      } else if (e.status === 'granted') granted += e.credits;
    }
    return { pending, granted, pendingResults };
  }
}
