// Which pieces of a blob to ask which holder for, as a pure state machine: no I/O, no timers, no
// clock. The fetch (blob-fetch.ts) owns the links and the waiting; it tells this class what
// happened — a holder joined, a range was asked, a piece landed, a request ended, a partial holder
// lacked a piece, a holder dropped out — and asks it for the next range.
//
// The policy, and why:
// - Contiguous shares. Once the blob's size is known, the missing pieces are dealt out in
//   contiguous shares, one per holder at work, so each holder streams runs of pieces (a range
//   request per run) instead of scattered singles.
// - A range at a time, up to `lanes` in flight per holder, at most `chunk` pieces each (a quarter
//   of a share, at most 16): the round trip between ranges is hidden, and there is always a share
//   left for a holder that joins or finishes early to take over.
// - Own share, then unowned pieces, then steal: a holder that runs out takes the tail half of the
//   largest share still waiting. A partial holder (a peer still fetching the blob) steals nothing:
//   pieces it may lack would wait on it while their full holder could send them.
// - A holder that drops out, or a request that ends early, hands its unlanded pieces back.
// - A random rotation of the first deal where partial holders are about, so that followers of one
//   blob start at different pieces and soon hold different pieces to serve one another.
// - Probe: while the size is unknown (no piece list), one holder is asked for the first few
//   pieces; its header sizes the blob.
import { at } from '../core/at.ts';

/** Pieces asked of the first holder while the blob's size is unknown (no piece list). */
export const PROBE_PIECES = 4;

/** Most pieces in one range request. */
export const MAX_RANGE_PIECES = 16;

/**
 * Ranges in a row a partial holder may answer 'not-found' (it lacked a piece in time) before it
 * leaves the fetch; each miss hands the rest of its range to the others.
 */
export const PARTIAL_MISSES = 4;

/** Pieces [from, to) of the blob. */
export type PieceRange = readonly [from: number, to: number];

export interface PieceSchedulerOptions {
  /** Requests in flight per holder (at least 1). */
  readonly lanes: number;
  /**
   * How many holders the missing pieces are expected to be shared among (sizes the ranges: a
   * share is cut into about four). At least 1.
   */
  readonly shares: number;
  /** Uniform in [0, 1), for the first deal's rotation. Default Math.random. */
  readonly random?: () => number;
  /** Misses in a row before a partial holder leaves. Default {@link PARTIAL_MISSES}. */
  readonly partialMisses?: number;
}

interface Holder {
  /** A peer still fetching the blob itself: it may lack pieces, and it steals nothing. */
  readonly partial: boolean;
  /** Dropped out ({@link PieceScheduler.release}); never asked again. */
  gone: boolean;
  /** Ranges asked and not yet finished. */
  out: number;
  /** Misses in a row (partial holders). */
  misses: number;
  /** Pieces it lacked a moment ago: not asked of it again until {@link PieceScheduler.forgive}. */
  readonly lacks: Set<number>;
}

/**
 * The piece schedule of one pass of a fetch. Holders are numbered in the order they join.
 *
 * @example
 * const s = new PieceScheduler({ lanes: 2, shares: 4 });
 * s.size(partial.pieceCount, { rotate: false });
 * const a = s.addHolder(false);
 * const range = s.take(a);               // [0, 16): ask holder a for it
 * s.land(3, a);                          // piece 3 arrived and passed its check
 * s.finish(a, range!);                   // the request ended: unlanded pieces go back
 * s.release(a);                          // holder a dropped out: its share goes back
 */
export class PieceScheduler {
  readonly #lanes: number;
  readonly #shares: number;
  readonly #random: () => number;
  readonly #partialMisses: number;
  /** Pieces of the blob; -1 while unknown. */
  #n = -1;
  /** Per piece: the holder whose share (or request) it is in, or -1. */
  #owner = new Int32Array(0);
  /** Per piece: 1 while a request for it is out. */
  #flying = new Uint8Array(0);
  /** Per piece: 1 once it landed. */
  #landed = new Uint8Array(0);
  #landedCount = 0;
  #chunk = 1;
  #probing = false;
  readonly #holders: Holder[] = [];

  constructor(opts: PieceSchedulerOptions) {
    this.#lanes = Math.max(1, Math.floor(opts.lanes));
    this.#shares = Math.max(1, Math.floor(opts.shares));
    this.#random = opts.random ?? Math.random;
    this.#partialMisses = opts.partialMisses ?? PARTIAL_MISSES;
  }

  /** Whether the blob's piece count is known. */
  get sized(): boolean {
    return this.#n >= 0;
  }

  /** Pieces of the blob (0 while unknown). */
  get pieceCount(): number {
    return Math.max(0, this.#n);
  }

  /** Pieces landed so far. */
  get landedCount(): number {
    return this.#landedCount;
  }

  /** Whether every piece landed (the size must be known). */
  get complete(): boolean {
    return this.#n >= 0 && this.#landedCount === this.#n;
  }

  /** Most pieces one range may hold now. */
  get chunk(): number {
    return this.#chunk;
  }

  /** Whether piece `i` landed. */
  landed(i: number): boolean {
    return this.#landed[i] === 1;
  }

  /** Whether a request for piece `i` is out. */
  inFlight(i: number): boolean {
    return this.#flying[i] === 1;
  }

  /** The holder whose share piece `i` is in (-1 for nobody). */
  ownerOf(i: number): number {
    return this.#owner[i] ?? -1;
  }

  /** Ranges holder `h` has out. */
  outstanding(h: number): number {
    return this.#holders[h]?.out ?? 0;
  }

  /** Whether holder `h` lacked pieces lately (they are not asked of it until {@link forgive}). */
  lacksSome(h: number): boolean {
    return (this.#holders[h]?.lacks.size ?? 0) > 0;
  }

  /** Whether holder `h` lacked piece `i` lately. */
  lacks(h: number, i: number): boolean {
    return this.#holders[h]?.lacks.has(i) === true;
  }

  /** A holder joins (full, or `partial`: still fetching the blob itself); returns its number. */
  addHolder(partial: boolean): number {
    this.#holders.push({ partial, gone: false, out: 0, misses: 0, lacks: new Set() });
    return this.#holders.length - 1;
  }

  /**
   * The blob has `pieceCount` pieces (a piece list, or the first header, said so): deals the
   * missing pieces out in contiguous shares among the holders at work. Once; later calls do
   * nothing. `landed` names pieces already in hand (a resumed blob); `rotate` starts the deal at a
   * random piece (where partial holders are about).
   */
  size(pieceCount: number, opts: { rotate: boolean; landed?: (i: number) => boolean }): void {
    if (this.#n >= 0) return;
    const n = Math.max(0, Math.floor(pieceCount));
    const probeOwner = this.#owner;
    const probeFlying = this.#flying;
    this.#n = n;
    this.#owner = new Int32Array(n).fill(-1);
    this.#flying = new Uint8Array(n);
    this.#landed = new Uint8Array(n);
    const keep = Math.min(n, probeOwner.length);
    this.#owner.set(probeOwner.subarray(0, keep));
    this.#flying.set(probeFlying.subarray(0, keep));
    for (let i = 0; i < n; i++) {
      if (opts.landed?.(i)) {
        this.#landed[i] = 1;
        this.#landedCount++;
      }
    }
    let free: number[] = [];
    for (let i = 0; i < n; i++) if (!this.#landed[i] && !this.#flying[i]) free.push(i);
    if (opts.rotate && free.length > 1) {
      const cut = Math.floor(this.#random() * free.length);
      free = [...free.slice(cut), ...free.slice(0, cut)];
    }
    this.#chunk = Math.max(1, Math.min(MAX_RANGE_PIECES, Math.ceil(free.length / (this.#shares * 4))));
    // Shares go to the holders that joined so far; later ones take from them.
    const live: number[] = [];
    this.#holders.forEach((h, i) => {
      if (!h.gone) live.push(i);
    });
    if (live.length === 0) return;
    free.forEach((piece, j) => {
      this.#owner[piece] = at(live, Math.floor((j * live.length) / free.length), 'live holders');
    });
  }

  /**
   * The next range to ask holder `h` for, marked in flight: its own share first, then pieces
   * nobody owns, then (full holders only) the tail half of the largest share still waiting.
   * Undefined when there is nothing for it now (it has `lanes` requests out, dropped out, or every
   * open piece is in flight, landed or lacked by it). While the size is unknown: the probe range,
   * to one holder at a time.
   */
  take(h: number): PieceRange | undefined {
    const holder = this.#holders[h];
    if (!holder || holder.gone || holder.out >= this.#lanes) return undefined;
    if (this.#n < 0) {
      if (this.#probing) return undefined;
      this.#probing = true;
      this.#owner = new Int32Array(PROBE_PIECES).fill(h);
      this.#flying = new Uint8Array(PROBE_PIECES).fill(1);
      holder.out++;
      return [0, PROBE_PIECES];
    }
    const n = this.#n;
    const owner = this.#owner;
    const open = (i: number) => !this.#landed[i] && !this.#flying[i] && !holder.lacks.has(i);
    const runFrom = (first: number, mine: (i: number) => boolean): PieceRange => {
      let end = first;
      while (end < n && end - first < this.#chunk && mine(end) && open(end)) end++;
      for (let i = first; i < end; i++) {
        owner[i] = h;
        this.#flying[i] = 1;
      }
      holder.out++;
      return [first, end];
    };
    for (let i = 0; i < n; i++) if (owner[i] === h && open(i)) return runFrom(i, (j) => owner[j] === h);
    for (let i = 0; i < n; i++) if (owner[i] === -1 && open(i)) return runFrom(i, (j) => owner[j] === -1);
    if (holder.partial) return undefined;
    const waiting = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const o = owner[i] as number; // owner is n long once the size is known
      if (o >= 0 && o !== h && open(i)) {
        const list = waiting.get(o) ?? [];
        list.push(i);
        waiting.set(o, list);
      }
    }
    let victim: number[] | undefined;
    for (const list of waiting.values()) if (!victim || list.length > victim.length) victim = list;
    if (!victim) return undefined;
    for (const i of victim.slice(Math.floor(victim.length / 2))) owner[i] = h;
    for (let i = 0; i < n; i++) if (owner[i] === h && open(i)) return runFrom(i, (j) => owner[j] === h);
    return undefined;
  }

  /**
   * Piece `i` landed (and passed its check), sent by holder `h`; false when it had landed before.
   * A landing counts as progress for `h` (its misses in a row start again).
   */
  land(i: number, h?: number): boolean {
    if (this.#n < 0 || i < 0 || i >= this.#n || this.#landed[i]) return false;
    this.#landed[i] = 1;
    this.#landedCount++;
    const holder = h === undefined ? undefined : this.#holders[h];
    if (holder) holder.misses = 0;
    return true;
  }

  /** The request for `range` to holder `h` ended, however it ended: its unlanded pieces are anybody's again. */
  finish(h: number, range: PieceRange): void {
    const holder = this.#holders[h];
    if (holder && holder.out > 0) holder.out--;
    for (let i = range[0]; i < Math.min(range[1], this.#flying.length); i++) {
      this.#flying[i] = 0;
      if (!this.#landed[i] && this.#owner[i] === h) this.#owner[i] = -1;
    }
    if (this.#n < 0) this.#probing = false;
  }

  /**
   * Partial holder `h` answered that it lacks a piece of `range` (it had not landed there in
   * time): that piece is not asked of it again until {@link forgive}, and when the range brought
   * nothing (`gotAny` false) the rest of its share goes back to everyone. Returns true when it has
   * missed too often in a row and should leave the fetch. Call {@link finish} for the range too.
   */
  lacked(h: number, range: PieceRange, gotAny: boolean): boolean {
    const holder = this.#holders[h];
    if (!holder) return false;
    holder.misses = gotAny ? 1 : holder.misses + 1;
    let first = range[0];
    if (this.#n >= 0) while (first < this.#n && this.#landed[first]) first++;
    if (first < range[1]) holder.lacks.add(first);
    if (holder.misses >= this.#partialMisses) return true;
    if (!gotAny) {
      for (let i = 0; i < this.#owner.length; i++) {
        if (this.#owner[i] === h && !this.#flying[i]) this.#owner[i] = -1;
      }
    }
    return false;
  }

  /** Misses in a row of holder `h`. */
  misses(h: number): number {
    return this.#holders[h]?.misses ?? 0;
  }

  /** Holder `h` may be asked again for the pieces it lacked (some time has passed). */
  forgive(h: number): void {
    this.#holders[h]?.lacks.clear();
  }

  /** Holder `h` dropped out: its share and anything it had in flight go back; it is never asked again. */
  release(h: number): void {
    const holder = this.#holders[h];
    if (!holder) return;
    holder.gone = true;
    holder.out = 0;
    for (let i = 0; i < this.#owner.length; i++) {
      if (this.#owner[i] === h) {
        this.#owner[i] = -1;
        this.#flying[i] = 0;
      }
    }
    if (this.#n < 0) this.#probing = false;
  }
}
