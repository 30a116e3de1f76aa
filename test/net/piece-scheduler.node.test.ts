// Property tests of the piece scheduler on seeded random schedules: holders (full and partial)
// that join, deliver pieces in random order, lack pieces, and drop out mid-way, driven exactly as
// the fetch (src/net/blob-fetch.ts) drives the class. No I/O: the scheduler is pure.
import { describe, expect, it } from 'vitest';
import {
  MAX_RANGE_PIECES,
  PARTIAL_MISSES,
  type PieceRange,
  PieceScheduler,
  PROBE_PIECES,
} from '../../src/net/piece-scheduler.ts';
import { seededFloats } from './seeded.ts';

/** Uniform in [0, 1) from a seed (mulberry32 via seededFloats). */
function rng(seed: number): () => number {
  const f = seededFloats(1 << 16, seed);
  let k = 0;
  return () => (f[k++ & 0xffff]! + 1) / 2;
}

interface SimHolder {
  readonly index: number;
  readonly partial: boolean;
  /** A full holder that never drops out, so the fetch can always finish. */
  readonly anchor: boolean;
  /** Pieces a partial holder has (it grows as its own fetch goes on). */
  readonly has: Set<number>;
  gone: boolean;
  /** Pieces it answered 'not-found' for since it was last forgiven. */
  readonly lacked: Set<number>;
}

interface Request {
  readonly holder: SimHolder;
  readonly range: PieceRange;
  next: number;
  gotAny: boolean;
}

/**
 * One random schedule: returns how often each piece landed, after checking every invariant on
 * the way (a failed expect names the seed).
 */
function simulate(seed: number): { landings: number[]; n: number; steps: number } {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const n = 1 + Math.floor(random() * 90);
  const lanes = random() < 0.2 ? 1 : 2;
  const shares = 1 + Math.floor(random() * 4);
  const sized = random() < 0.7; // a piece list up front, or a probe first
  const rotate = random() < 0.5;
  const sched = new PieceScheduler({ lanes, shares, random });
  const holders: SimHolder[] = [];
  const requests: Request[] = [];
  const landings = new Array<number>(n).fill(0);
  const where = `seed ${seed}`;

  const addHolder = (partial: boolean, anchor = false) => {
    const index = sched.addHolder(partial);
    const has = new Set<number>();
    if (partial) for (let i = 0; i < n; i++) if (random() < 0.4) has.add(i);
    holders.push({ index, partial, anchor, has, gone: false, lacked: new Set() });
  };
  addHolder(false, true);
  for (let k = Math.floor(random() * 3); k > 0; k--) addHolder(false);
  for (let k = Math.floor(random() * 3); k > 0; k--) addHolder(true);
  if (sized) sched.size(n, { rotate });

  const ensureSized = () => {
    if (!sched.sized) sched.size(n, { rotate, landed: (i) => landings[i]! > 0 });
  };
  const endRequest = (r: Request) => {
    requests.splice(requests.indexOf(r), 1);
    sched.finish(r.holder.index, r.range);
  };
  const drop = (h: SimHolder) => {
    for (const r of requests.filter((x) => x.holder === h)) endRequest(r);
    sched.release(h.index);
    h.gone = true;
    for (let i = 0; i < sched.pieceCount; i++) {
      expect(sched.ownerOf(i), `${where}: piece ${i} still owned by dropped holder ${h.index}`).not.toBe(
        h.index,
      );
    }
    expect(sched.take(h.index), `${where}: a dropped holder is asked again`).toBeUndefined();
  };

  let steps = 0;
  for (; steps < 50_000 && !sched.complete; steps++) {
    const live = holders.filter((h) => !h.gone);
    const roll = random();
    if (roll < 0.4) {
      // Ask a holder for its next range.
      const h = pick(live);
      const ownersBefore = Array.from({ length: sched.pieceCount }, (_, i) => sched.ownerOf(i));
      const range = sched.take(h.index);
      if (!range) continue;
      const [from, to] = range;
      expect(from, where).toBeLessThan(to);
      expect(sched.outstanding(h.index), `${where}: in flight past the window`).toBeLessThanOrEqual(lanes);
      expect(requests.filter((r) => r.holder === h).length, where).toBeLessThan(lanes);
      if (!sched.sized) {
        expect(range, where).toEqual([0, PROBE_PIECES]);
        expect(requests, `${where}: two probes at once`).toEqual([]);
      } else {
        expect(to, where).toBeLessThanOrEqual(n);
        expect(to - from, `${where}: a range over the chunk`).toBeLessThanOrEqual(
          Math.min(sched.chunk, MAX_RANGE_PIECES),
        );
        for (let i = from; i < to; i++) {
          expect(landings[i], `${where}: piece ${i} asked for after it landed`).toBe(0);
          expect(h.lacked.has(i), `${where}: piece ${i} asked again of a holder that lacked it`).toBe(false);
          for (const r of requests) {
            const overlap = i >= r.range[0] && i < r.range[1];
            expect(overlap, `${where}: piece ${i} asked of two holders at once`).toBe(false);
          }
          // A partial holder steals nothing from another holder's share.
          if (h.partial) expect([-1, h.index], where).toContain(ownersBefore[i]);
        }
      }
      requests.push({ holder: h, range, next: from, gotAny: false });
    } else if (roll < 0.85 && requests.length > 0) {
      // A piece arrives (or a partial holder lacks it and ends the range).
      const r = pick(requests);
      ensureSized(); // the header arrived
      const end = Math.min(r.range[1], n);
      if (r.next >= end) {
        endRequest(r);
        continue;
      }
      const h = r.holder;
      if (h.partial && !h.has.has(r.next)) {
        h.lacked.add(r.next);
        const leave = sched.lacked(h.index, r.range, r.gotAny);
        expect(sched.lacks(h.index, r.next), where).toBe(true);
        endRequest(r);
        if (leave) {
          expect(sched.misses(h.index), where).toBeGreaterThanOrEqual(PARTIAL_MISSES);
          drop(h);
        }
        continue;
      }
      expect(sched.inFlight(r.next), where).toBe(true);
      expect(sched.land(r.next, h.index), `${where}: piece ${r.next} landed twice`).toBe(true);
      landings[r.next]!++;
      r.gotAny = true;
      r.next++;
      if (r.next >= end) endRequest(r);
    } else if (roll < 0.9) {
      // A holder that is not the anchor drops out mid-way (its link died, it stalled, it lied).
      const victims = live.filter((h) => !h.anchor);
      if (victims.length > 0) drop(pick(victims));
    } else if (roll < 0.95) {
      // Time passes for a partial holder: it may be asked again for what it lacked, and it has
      // fetched more pieces meanwhile.
      const h = pick(live);
      sched.forgive(h.index);
      h.lacked.clear();
      for (let i = 0; i < n; i++) if (random() < 0.2) h.has.add(i);
    } else if (holders.length < 12) {
      addHolder(random() < 0.5);
    }
  }
  expect(sched.complete, `${where}: not complete after ${steps} steps`).toBe(true);
  expect(sched.landedCount, where).toBe(n);
  return { landings, n, steps };
}

describe('PieceScheduler on seeded random schedules', () => {
  it('lands every piece exactly once, never asks twice at once, never past the window, never a dropped holder', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const { landings, n } = simulate(seed);
      expect(landings, `seed ${seed}`).toEqual(new Array(n).fill(1));
    }
  });
});

describe('PieceScheduler, one behaviour at a time', () => {
  it('deals contiguous shares, one per holder, in ranges of a quarter share', () => {
    const s = new PieceScheduler({ lanes: 2, shares: 2 });
    const a = s.addHolder(false);
    const b = s.addHolder(false);
    s.size(64, { rotate: false });
    expect(s.chunk).toBe(8);
    expect(s.take(a)).toEqual([0, 8]);
    expect(s.take(b)).toEqual([32, 40]);
    expect(s.take(a)).toEqual([8, 16]);
    expect(s.take(a)).toBeUndefined(); // two in flight: the window is full
  });

  it('hands back what a dropped holder had in flight and in its share; the other takes it all', () => {
    const s = new PieceScheduler({ lanes: 2, shares: 2 });
    const a = s.addHolder(false);
    const b = s.addHolder(false);
    s.size(32, { rotate: false });
    const ra = s.take(a)!;
    s.land(ra[0], a);
    s.release(a);
    for (let i = 0; i < 32; i++) {
      expect(s.ownerOf(i)).not.toBe(a);
      if (i !== ra[0]) expect(s.inFlight(i)).toBe(false);
    }
    for (let guard = 0; !s.complete && guard < 100; guard++) {
      const r = s.take(b)!;
      expect(r).toBeDefined();
      for (let i = r[0]; i < r[1]; i++) expect(s.land(i, b)).toBe(true);
      s.finish(b, r);
    }
    expect(s.complete).toBe(true);
  });

  it('returns the unlanded rest of a range that ended early', () => {
    const s = new PieceScheduler({ lanes: 1, shares: 1 });
    const a = s.addHolder(false);
    s.size(8, { rotate: false });
    const r = s.take(a)!;
    expect(r).toEqual([0, 2]);
    s.land(0, a);
    s.finish(a, r);
    expect(s.inFlight(1)).toBe(false);
    expect(s.ownerOf(1)).toBe(-1); // anybody's: after its own share, or for another holder
    expect(s.take(a)).toEqual([2, 4]);
  });

  it('a full holder that ran out steals the tail half of the largest share; a partial holder steals nothing', () => {
    const s = new PieceScheduler({ lanes: 2, shares: 1 });
    const a = s.addHolder(false);
    s.size(16, { rotate: false });
    const b = s.addHolder(false);
    const p = s.addHolder(true);
    expect(s.take(p)).toBeUndefined();
    const r = s.take(b)!;
    expect(r[0]).toBe(8);
    expect(s.ownerOf(15)).toBe(b);
    expect(s.ownerOf(7)).toBe(a);
  });

  it('a partial holder that lacks pieces is not asked for them again until forgiven, and leaves after missing in a row', () => {
    const s = new PieceScheduler({ lanes: 1, shares: 1 });
    const p = s.addHolder(true);
    s.size(40, { rotate: false });
    let leave = false;
    for (let miss = 1; miss <= PARTIAL_MISSES; miss++) {
      const r = s.take(p)!;
      expect(s.lacks(p, r[0])).toBe(false);
      leave = s.lacked(p, r, false);
      s.finish(p, r);
      expect(s.lacks(p, r[0])).toBe(true);
      expect(leave).toBe(miss >= PARTIAL_MISSES);
    }
    expect(leave).toBe(true);
    s.forgive(p);
    expect(s.lacksSome(p)).toBe(false);
  });

  it('a landing resets the misses in a row', () => {
    const s = new PieceScheduler({ lanes: 1, shares: 1 });
    const p = s.addHolder(true);
    s.size(40, { rotate: false });
    for (let i = 0; i < PARTIAL_MISSES - 1; i++) {
      const r = s.take(p)!;
      s.lacked(p, r, false);
      s.finish(p, r);
    }
    const r = s.take(p)!;
    s.land(r[0], p);
    expect(s.misses(p)).toBe(0);
    expect(s.lacked(p, r, true)).toBe(false);
    expect(s.misses(p)).toBe(1);
  });

  it('probes one holder at a time while the size is unknown; the deal keeps what the probe has in flight', () => {
    const s = new PieceScheduler({ lanes: 2, shares: 2 });
    const a = s.addHolder(false);
    const b = s.addHolder(false);
    expect(s.take(a)).toEqual([0, PROBE_PIECES]);
    expect(s.take(b)).toBeUndefined();
    s.size(40, { rotate: false });
    s.land(0, a);
    for (let i = 1; i < PROBE_PIECES; i++) expect(s.inFlight(i)).toBe(true);
    const r = s.take(b)!;
    expect(r[0]).toBeGreaterThanOrEqual(PROBE_PIECES);
  });

  it('a probe that failed lets the next holder probe', () => {
    const s = new PieceScheduler({ lanes: 2, shares: 2 });
    const a = s.addHolder(false);
    const b = s.addHolder(false);
    const r = s.take(a)!;
    s.finish(a, r);
    expect(s.take(b)).toEqual([0, PROBE_PIECES]);
  });

  it('skips pieces already in hand and rotates the first deal when asked', () => {
    const s = new PieceScheduler({ lanes: 1, shares: 1, random: () => 0.5 });
    const a = s.addHolder(false);
    const b = s.addHolder(false);
    s.size(10, { rotate: true, landed: (i) => i < 2 });
    expect(s.landedCount).toBe(2);
    // Missing 2…9, rotated to start at 6: the first holder's share is 6…9, the second's 2…5.
    expect(s.take(a)).toEqual([6, 8]);
    expect(s.take(b)).toEqual([2, 4]);
    expect(s.ownerOf(0)).toBe(-1);
  });

  it('an empty blob is complete at once', () => {
    const s = new PieceScheduler({ lanes: 2, shares: 4 });
    s.size(0, { rotate: false });
    expect(s.complete).toBe(true);
  });
});
