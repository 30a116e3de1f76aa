// Which connected volunteers hold which blobs, so a volunteer that needs a model can be sent to a
// few peers that have it instead of to the hub (issue 5: the hub's bandwidth must not be the
// limit). Held in memory only: a holder is a live connection, and a restart forgets them all,
// which costs nothing but a few fetches from the hub until volunteers announce again.

export interface BlobSwarmOptions {
  /** Blobs one holder may be listed for (default 4096); announcements past it are ignored. */
  readonly maxBlobsPerHolder?: number;
  /** Uniform in [0, 1); seeded in tests. */
  readonly random?: () => number;
}

/**
 * Holders by blob. A holder is one connection's PeerJS id; it is dropped when its connection
 * closes.
 *
 * @example
 * swarm.announce('h0123…', [modelSha]);
 * swarm.holders(modelSha, 4, 'h4567…'); // up to 4 peer ids, never the asker
 * swarm.drop('h0123…');
 */
export class BlobSwarm {
  readonly #byBlob = new Map<string, Set<string>>();
  readonly #byHolder = new Map<string, Set<string>>();
  readonly #max: number;
  readonly #random: () => number;

  constructor(opts: BlobSwarmOptions = {}) {
    this.#max = opts.maxBlobsPerHolder ?? 4096;
    this.#random = opts.random ?? Math.random;
  }

  /** Lists `holder` for `blobs`; returns how many blobs it is listed for now. */
  announce(holder: string, blobs: readonly string[]): number {
    let mine = this.#byHolder.get(holder);
    if (!mine) {
      mine = new Set();
      this.#byHolder.set(holder, mine);
    }
    for (const b of blobs) {
      if (mine.has(b)) continue;
      if (mine.size >= this.#max) break;
      mine.add(b);
      let set = this.#byBlob.get(b);
      if (!set) {
        set = new Set();
        this.#byBlob.set(b, set);
      }
      set.add(holder);
    }
    return mine.size;
  }

  /** Up to `n` holders of `blob` in random order, without `except`. */
  holders(blob: string, n: number, except?: string): string[] {
    const set = this.#byBlob.get(blob);
    if (!set) return [];
    const all = [...set].filter((h) => h !== except);
    // Partial Fisher–Yates: a random sample spreads requesters over holders.
    for (let i = 0; i < Math.min(n, all.length); i++) {
      const j = i + Math.floor(this.#random() * (all.length - i));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    return all.slice(0, n);
  }

  /** Forgets everything `holder` announced (its connection closed). */
  drop(holder: string): void {
    const mine = this.#byHolder.get(holder);
    if (!mine) return;
    this.#byHolder.delete(holder);
    for (const b of mine) {
      const set = this.#byBlob.get(b);
      set?.delete(holder);
      if (set?.size === 0) this.#byBlob.delete(b);
    }
  }

  /** Holders and (holder, blob) listings right now. */
  size(): { holders: number; listings: number } {
    let listings = 0;
    for (const s of this.#byHolder.values()) listings += s.size;
    return { holders: this.#byHolder.size, listings };
  }
}
