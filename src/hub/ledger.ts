// The credit ledger: one entry per (volunteer, shard), pending until the shard is judged, then
// granted or void. The entry's key is what makes credit exactly-once (DESIGN.md invariant 2): a
// second result for the same shard by the same volunteer cannot add a second entry. Runs inside
// the Scheduler's transactions. Amounts are integer base units (src/protocol/credit.ts), never floats.
import type { EmbedAttribution } from '../protocol/embed.ts';
import type { LedgerRepository } from './store.ts';

/** The embedding site's share of credit earned through its widget when the operator sets none: 10%. */
export const DEFAULT_EMBED_SHARE_BPS = 1_000;

export class Ledger {
  readonly #store: LedgerRepository;
  readonly #embedShareBps: bigint;

  /** `embedShareBps`: the embedding site's share of each entry earned through a widget (basis points). */
  constructor(store: LedgerRepository, embedShareBps = DEFAULT_EMBED_SHARE_BPS) {
    this.#store = store;
    this.#embedShareBps = BigInt(embedShareBps);
  }

  /**
   * Records pending credit (base units) for a result; false when the volunteer already has an
   * entry for the shard. `embed`: the site that embedded the volunteer and its payout address,
   * kept with the entry with the site's share (fixed now: a later change of the rule never lowers
   * what an address earned, which a cumulative voucher needs).
   */
  pending(volunteer: string, shard: string, job: string, credits: bigint, embed?: EmbedAttribution): boolean {
    return this.#store.addCredit({
      volunteer,
      shard,
      job,
      credits,
      status: 'pending',
      ...(embed
        ? {
            site: embed.origin,
            payout: embed.payout,
            payoutCredits: (credits * this.#embedShareBps) / 10_000n,
          }
        : {}),
    });
  }

  /** Grants or voids a result's pending credit once its shard is judged. */
  settle(volunteer: string, shard: string, granted: boolean): void {
    this.#store.setCreditStatus(volunteer, shard, granted ? 'granted' : 'void');
  }

  /** Voids every pending entry of a job (cancelled, or failed as a whole); returns how many. */
  voidJob(job: string): number {
    return this.#store.voidPendingCredit(job);
  }

  /**
   * How many of a volunteer's results wait for their shard to be judged: its pending entries only
   * (every `no-work` asks; a store holds those at hand, not the volunteer's whole history).
   */
  pendingResults(volunteer: string): number {
    return this.#store.ledger(volunteer, 'pending').length;
  }

  /**
   * A volunteer's credit in base units (`CREDIT_UNITS` per credit): pending (awaiting validation)
   * and granted, and how many results wait. Summed as bigints: exact at any total.
   */
  of(volunteer: string): { pending: bigint; granted: bigint; pendingResults: number } {
    let pending = 0n;
    let granted = 0n;
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
