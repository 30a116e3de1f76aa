// How much a volunteer trusts each peer it has talked to. Kept per PeerNode, in memory: a peer
// that served bad bytes or broke the protocol sinks and is asked last (or not at all); the hub's
// own reputation of volunteers is a separate, durable thing.
import type { HearthErrorCode } from '../core/errors.ts';

/** How much one kind of misbehaviour costs. A good transfer earns +1. */
export const PENALTY: Readonly<Partial<Record<HearthErrorCode, number>>> = {
  // Wrong bytes or garbage frames: deliberate or broken, either way not worth asking again soon.
  'blob/corrupt': 50,
  'net/protocol': 50,
  // Stalls and deaths happen to honest tabs (a closed laptop): a small cost.
  'net/timeout': 10,
  'net/unreachable': 5,
  'blob/missing': 1,
};

/** Peers at or below this score are not asked for blobs. */
export const BANNED_AT = -100;

/** A peer's score and what last changed it. */
export interface PeerRecord {
  readonly score: number;
  readonly lastReason?: HearthErrorCode | 'ok';
}

/**
 * A per-peer score map. Starts every peer at 0.
 *
 * @example
 * const scores = new PeerScores();
 * scores.penalize('peer-x', 'blob/corrupt');
 * scores.rank(['peer-x', 'peer-y']); // ['peer-y', 'peer-x']
 */
export class PeerScores {
  readonly #peers = new Map<string, PeerRecord>();

  score(peer: string): number {
    return this.#peers.get(peer)?.score ?? 0;
  }

  get(peer: string): PeerRecord | undefined {
    return this.#peers.get(peer);
  }

  /** Lowers `peer`'s score by the penalty of `code` (1 for codes without one). */
  penalize(peer: string, code: HearthErrorCode): number {
    const score = this.score(peer) - (PENALTY[code] ?? 1);
    this.#peers.set(peer, { score, lastReason: code });
    return score;
  }

  /** Raises `peer`'s score by 1 after a verified transfer. */
  reward(peer: string): number {
    const score = this.score(peer) + 1;
    this.#peers.set(peer, { score, lastReason: 'ok' });
    return score;
  }

  banned(peer: string): boolean {
    return this.score(peer) <= BANNED_AT;
  }

  /** The peers not banned, best first (ties keep their given order). */
  rank(peers: readonly string[]): string[] {
    return peers
      .map((p, i) => ({ p, i, s: this.score(p) }))
      .filter((x) => x.s > BANNED_AT)
      .sort((a, b) => b.s - a.s || a.i - b.i)
      .map((x) => x.p);
  }
}
