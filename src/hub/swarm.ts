// Which connected volunteers hold which blobs, so a volunteer that needs a model can be sent to a
// few peers that have it instead of to the hub (issue 5: the hub's bandwidth must not be the
// limit). Held in memory only: a holder is a live connection, and a restart forgets them all,
// which costs nothing but a few fetches from the hub until volunteers announce again.
import { at } from '../core/at.ts';

export interface BlobSwarmOptions {
  /** Blobs one holder may be listed for (default 4096); announcements past it are ignored. */
  readonly maxBlobsPerHolder?: number;
  /** Uniform in [0, 1); seeded in tests. */
  readonly random?: () => number;
  /**
   * How long a volunteer that asked for a blob nobody holds counts as fetching it from the hub
   * (default 120 s): others who ask meanwhile are told to wait for it rather than download too.
   */
  readonly fetchingForMs?: number;
  /** Clock for `fetchingForMs`; default Date.now. */
  readonly now?: () => number;
  /**
   * Peers kept per blob as partial holders (default 64; the oldest goes first): peers that were
   * told of holders and have not announced the blob yet, so are fetching it from peers and serve
   * the pieces they have. Each is listed for `fetchingForMs` at most.
   */
  readonly maxPartialPerBlob?: number;
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
  readonly #fetchingForMs: number;
  readonly #now: () => number;
  /** blob → volunteers the hub told "nobody holds it" (so fetching it from the hub), and when. */
  readonly #fetching = new Map<string, Map<string, number>>();
  /** blob → volunteers the hub named holders to (so fetching it from peers), and when. */
  readonly #partial = new Map<string, Map<string, number>>();
  readonly #maxPartial: number;

  constructor(opts: BlobSwarmOptions = {}) {
    this.#max = opts.maxBlobsPerHolder ?? 4096;
    this.#random = opts.random ?? Math.random;
    this.#fetchingForMs = opts.fetchingForMs ?? 120_000;
    this.#now = opts.now ?? Date.now;
    this.#maxPartial = opts.maxPartialPerBlob ?? 64;
  }

  /** Lists `holder` for `blobs`; returns how many blobs it is listed for now. */
  announce(holder: string, blobs: readonly string[]): number {
    let mine = this.#byHolder.get(holder);
    if (!mine) {
      mine = new Set();
      this.#byHolder.set(holder, mine);
    }
    for (const b of blobs) {
      this.#doneFetching(b, holder);
      this.#forget(this.#partial, b, holder);
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

  /** Whether `holder` is listed for `blob`. */
  lists(holder: string, blob: string): boolean {
    return this.#byHolder.get(holder)?.has(blob) ?? false;
  }

  /** Up to `n` holders of `blob` in random order, without `except`. */
  holders(blob: string, n: number, except?: string): string[] {
    const set = this.#byBlob.get(blob);
    if (!set) return [];
    return this.#sample(
      [...set].filter((h) => h !== except),
      n,
    );
  }

  #sample(all: string[], n: number): string[] {
    // Partial Fisher–Yates: a random sample spreads requesters over holders.
    for (let i = 0; i < Math.min(n, all.length); i++) {
      const j = i + Math.floor(this.#random() * (all.length - i));
      [all[i], all[j]] = [at(all, j, 'holders'), at(all, i, 'holders')];
    }
    return all.slice(0, n);
  }

  /**
   * Notes that `asker` was just told of holders for `blob` and is fetching it from them: until it
   * announces the blob, leaves, or `fetchingForMs` passes, it is one of the blob's partial holders.
   */
  fetchingFromPeers(blob: string, asker: string): void {
    if (this.#byHolder.get(asker)?.has(blob)) return;
    let set = this.#partial.get(blob);
    if (!set) this.#partial.set(blob, (set = new Map()));
    // Re-inserted so the Map's order stays oldest first.
    set.delete(asker);
    set.set(asker, this.#now());
    while (set.size > this.#maxPartial) set.delete(set.keys().next().value as string);
  }

  /** Up to `n` partial holders of `blob` (peers fetching it from peers), in random order, without `except`. */
  partialHolders(blob: string, n: number, except?: string): string[] {
    const set = this.#partial.get(blob);
    if (!set) return [];
    const now = this.#now();
    for (const [h, at] of set) if (now - at > this.#fetchingForMs) set.delete(h);
    if (set.size === 0) {
      this.#partial.delete(blob);
      return [];
    }
    return this.#sample(
      [...set.keys()].filter((h) => h !== except),
      n,
    );
  }

  /**
   * How many others are fetching `blob` from the hub right now (they asked when nobody held it
   * and have not announced it yet). When nobody holds the blob and nobody is fetching it, the
   * asker becomes its fetcher: a swarm starting cold downloads a model from the hub about once,
   * the rest wait for the first copy (cold-start race found by bench/p2p: 2–3 copies otherwise).
   */
  fetching(blob: string, asker: string): number {
    const now = this.#now();
    const set = this.#fetching.get(blob);
    if (set) {
      for (const [h, at] of set) if (now - at > this.#fetchingForMs) set.delete(h);
      if (set.size === 0) this.#fetching.delete(blob);
    }
    const others = [...(set?.keys() ?? [])].filter((h) => h !== asker).length;
    if (others === 0 && (this.#byBlob.get(blob)?.size ?? 0) === 0) {
      let s2 = this.#fetching.get(blob);
      if (!s2) this.#fetching.set(blob, (s2 = new Map()));
      if (!s2.has(asker)) s2.set(asker, now);
    }
    return others;
  }

  #doneFetching(blob: string, holder: string): void {
    this.#forget(this.#fetching, blob, holder);
  }

  #forget(map: Map<string, Map<string, number>>, blob: string, holder: string): void {
    const set = map.get(blob);
    if (!set) return;
    set.delete(holder);
    if (set.size === 0) map.delete(blob);
  }

  /** Forgets everything `holder` announced (its connection closed). */
  drop(holder: string): void {
    for (const map of [this.#fetching, this.#partial]) {
      for (const [b, set] of map) {
        set.delete(holder);
        if (set.size === 0) map.delete(b);
      }
    }
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
