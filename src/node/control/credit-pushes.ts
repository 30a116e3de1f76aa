// Credit pushes: a connection that follows `credit` (its hello said so) hears its volunteer's
// credit after its welcome and after each change — its result acknowledged, a shard it answered
// judged by someone else's result. Changes are gathered for `delayMs` and each volunteer gets one
// push per gathering, so a burst of results costs one ledger read per volunteer, not one per
// result. Nobody following costs nothing: the hub bench's volunteers never ask.
import { creditToWire } from '../../protocol/credit.ts';

/** What a push says, in base units. */
export interface CreditNow {
  readonly granted: bigint;
  readonly pending: bigint;
  readonly pendingResults: number;
  /** The address the volunteer is bound to, when it is. */
  readonly address?: string;
}

export interface CreditPushesOptions {
  /** The volunteer's credit now. */
  readonly creditOf: (volunteer: string) => CreditNow;
  /** Volunteers with a result on `shard` (whose credit a judgement moves). */
  readonly resultVolunteers: (shard: string) => readonly string[];
  /** Sends to the volunteer's live connection; false when it has none. */
  readonly push: (
    volunteer: string,
    m: { type: 'credit'; granted: string; pending: string; pendingResults: number; address?: string },
  ) => boolean;
  readonly onInternal: (e: unknown) => void;
  /** How long changes gather before they are pushed (default 250 ms). */
  readonly delayMs?: number;
}

/**
 * @example
 * const pushes = new CreditPushes({ creditOf, resultVolunteers, push, onInternal });
 * pushes.follow(volunteerId);                  // on welcome, when hello.follow has 'credit'
 * pushes.changed(volunteerId, judgedShardId);  // after a result
 */
export class CreditPushes {
  readonly #opts: CreditPushesOptions;
  readonly #following = new Set<string>();
  readonly #dirty = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: CreditPushesOptions) {
    this.#opts = opts;
  }

  /** The volunteer's connection follows credit: it hears its credit now. */
  follow(volunteer: string): void {
    this.#following.add(volunteer);
    this.#mark(volunteer);
  }

  unfollow(volunteer: string): void {
    this.#following.delete(volunteer);
    this.#dirty.delete(volunteer);
  }

  /** `volunteer`'s result was taken; when it judged `shard`, everyone with a result on it moved too. */
  changed(volunteer: string, judgedShard?: string): void {
    if (this.#following.size === 0) return;
    this.#mark(volunteer);
    if (judgedShard === undefined) return;
    try {
      for (const v of this.#opts.resultVolunteers(judgedShard)) this.#mark(v);
    } catch (e) {
      this.#opts.onInternal(e);
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dirty.clear();
    this.#following.clear();
  }

  #mark(volunteer: string): void {
    if (!this.#following.has(volunteer)) return;
    this.#dirty.add(volunteer);
    this.#timer ??= setTimeout(() => this.#flush(), this.#opts.delayMs ?? 250);
  }

  #flush(): void {
    this.#timer = undefined;
    const due = [...this.#dirty];
    this.#dirty.clear();
    for (const v of due) {
      if (!this.#following.has(v)) continue;
      try {
        const c = this.#opts.creditOf(v);
        this.#opts.push(v, {
          type: 'credit',
          granted: creditToWire(c.granted),
          pending: creditToWire(c.pending),
          pendingResults: c.pendingResults,
          ...(c.address ? { address: c.address } : {}),
        });
      } catch (e) {
        this.#opts.onInternal(e);
      }
    }
  }
}
