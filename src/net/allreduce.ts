// Averaging a tensor across a group of peers: a ring all-reduce (reduce-scatter, then
// all-gather) over PeerLink pushes, each message an envelope from protocol/allreduce.ts.
//
// Why a ring: each peer sends 2(N−1) chunks of ≈1/N of the tensor, i.e. ≈2(N−1)/N of it in all,
// which is the least any all-reduce can send per peer; and each peer talks to one neighbour only.
//
// Why the result is bit-identical everywhere: chunk k is summed exactly once, by the ring walk
// that starts at member k and adds members k+1, k+2, … in turn (a fixed order for a fixed group
// order), in f32 — a JS double sum of two f32 values rounded back to f32 is IEEE f32 addition, so
// every machine gets the same bits. The member that ends the walk divides by N and the all-gather
// only copies its bytes, so every peer holds the owner's exact bits.
//
// Why peers that drop are handled by restarting: a dead member leaves partial sums that include
// it scattered over the ring, and no survivor can subtract them. An attempt is named by the set
// of group members it runs without (a bitmask in every message); a peer that loses its right
// neighbour (its link dies, its push fails) adds it to the set and starts the next attempt among
// the survivors, and its first message carries the set on, so every survivor learns of the drop
// from its own left neighbour even when it never talked to the dead one. The set only grows, so
// survivors converge on the same attempt; messages tagged with a smaller set are stale and
// dropped, a larger set is adopted.
//
// Why contributions are signed: the ring's digest check only shows that members agree on which
// hashes went in, not who stands behind them. With `identity.sign`, each member signs
// contributionMessage(round, sha256) once and the signature travels with its hash around the ring,
// so every result carries signed contributions that a member reports to the hub (which knows each
// volunteer's key): a contribution later found wrong names its volunteer, who cannot deny it.
//
// Why a fallback: when the ring cannot finish (fewer than 2 members reachable, every dial failed,
// its time ran out, the others went on without this peer), `fallback` averages through the hub
// instead (client/allreduce-hub.ts), and the result says so (`via: 'hub'`).
import { HearthError, isHearthError } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import {
  type AllReducePhase,
  contributionMessage,
  MAX_GROUP,
  MAX_IDENTITY_BYTES,
  MAX_ROUND_ID_BYTES,
  MAX_SIGNATURE_CHARS,
} from '../protocol/allreduce.ts';
import { inboxOf } from './allreduce-inbox.ts';
import { DEFAULT_ALLREDUCE_TIMEOUT_MS, RoundRun } from './allreduce-round.ts';
import type { PeerNode } from './peer-node.ts';

export { allReduceProtocol } from './allreduce-inbox.ts';
export { DEFAULT_ALLREDUCE_TIMEOUT_MS };

export interface AllReduceOptions {
  /** Names this round; unique per round (a node refuses an id it has already run). ≤ 128 UTF-8 bytes. */
  readonly round: string;
  /** Peer ids in one order every member uses, this node's included; 2 to 1024 of them. */
  readonly group: readonly string[];
  /** This peer's contribution; the same length on every member. Not modified. */
  readonly tensor: Float32Array;
  /**
   * Who stands behind this contribution (the volunteer's id), reported with its hash; with `sign`,
   * also signed: `sign(contributionMessage(round, sha256))` must resolve with a base64url signature
   * of at most 128 characters (client/allreduce-hub.ts contributionSigner makes one from a key).
   */
  readonly identity?: AllReduceIdentity;
  /**
   * Averages through someone else when the ring cannot finish ('net/unreachable', 'net/timeout' or
   * 'net/refused'): client/allreduce-hub.ts hubFallback averages through the hub. Without it those
   * errors reject the round.
   */
  readonly fallback?: AllReduceFallback;
  /** Budget for the whole round, restarts included. Default {@link DEFAULT_ALLREDUCE_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
  /** Told as each ring step starts (progress meters; tests use it to kill a peer mid-round). */
  readonly onStep?: (p: AllReduceProgress) => void;
}

export interface AllReduceIdentity {
  readonly volunteer: string;
  /** Signs one contribution message (protocol/allreduce.ts contributionMessage); base64url. */
  readonly sign?: (message: string) => Promise<string>;
}

/** What a fallback gets: the round, and why the ring failed. */
export interface AllReduceFallbackRequest {
  readonly round: string;
  readonly group: readonly string[];
  /** This peer's id (a member of `group`). */
  readonly self: string;
  readonly tensor: Float32Array;
  /** SHA-256 of the tensor's bytes. */
  readonly sha256: string;
  readonly cause: HearthError;
}

/** A mean made elsewhere (the hub), and who is in it. */
export interface AllReduceFallbackResult {
  readonly mean: Float32Array;
  readonly contributors: readonly string[];
  readonly contributions: readonly Contribution[];
}

export type AllReduceFallback = (req: AllReduceFallbackRequest) => Promise<AllReduceFallbackResult>;

export interface AllReduceProgress {
  /** 1 for the first attempt, +1 for each restart without dropped peers. */
  readonly attempt: number;
  readonly members: readonly string[];
  readonly phase: AllReducePhase;
  readonly step: number;
}

/** One member's contribution: its tensor's SHA-256, as it declared it to the ring. */
export interface Contribution {
  readonly peer: string;
  readonly sha256: string;
  readonly volunteer?: string;
  /** The volunteer's signature of contributionMessage(round, sha256), when it signed. */
  readonly signature?: string;
}

export interface AllReduceResult {
  /** Element-wise mean over {@link contributors}; the same bits on every one of them. */
  readonly mean: Float32Array;
  /** Members whose tensors are in the mean, in group order. */
  readonly contributors: readonly string[];
  /** Each contributor's hash, in group order; identical on every contributor. */
  readonly contributions: readonly Contribution[];
  /** Members left out, with the reason as this peer saw it. */
  readonly dropped: readonly { readonly peer: string; readonly error: HearthError }[];
  /** Attempts run, the successful one included (0 when the ring never ran an attempt). */
  readonly attempts: number;
  /** 'ring': averaged peer-to-peer; 'hub': by the fallback, after the ring failed with `fallbackCause`. */
  readonly via: 'ring' | 'hub';
  readonly fallbackCause?: HearthError;
  /**
   * Data-plane bytes this node sent / received while the round ran: every frame on every link
   * (envelopes, headers, piece framing, acknowledgements, pings), so also any other traffic the
   * node had meanwhile. Not counted: SCTP/DTLS/IP overhead and signalling.
   */
  readonly bytesSent: number;
  readonly bytesReceived: number;
}

/**
 * Averages `tensor` across `group` with a ring all-reduce. Resolves with the mean (bit-identical
 * on every contributor), who contributed, and each contribution's SHA-256. A member whose link
 * dies, or who sends a message that fails validation, is dropped and the round restarts among
 * the rest. Fails with 'net/unreachable' when fewer than 2 members remain, 'net/timeout' when
 * `timeoutMs` passes, 'net/refused' when the other members went on without this one,
 * 'net/protocol' when members disagree about the contributions, 'input/invalid' for bad options.
 *
 * Every peer that resolves for a round resolves with the same mean and contributors, with one
 * exception: if a member leaves (closes, dies) after some members finished but before others
 * did, the others may finish a later attempt without it — each result's `contributors` says
 * which mean it is.
 *
 * @example
 * const node = await PeerNode.open({ host, port, protocols: [allReduceProtocol] }); // early messages kept
 * const { mean, contributors, contributions } = await allReduceMean(node, {
 *   round: 'job-7/round-12', group: ['peer-a', 'peer-b', 'peer-c'], tensor: pseudoGradient,
 * });
 */
export async function allReduceMean(node: PeerNode, opts: AllReduceOptions): Promise<AllReduceResult> {
  const inbox = inboxOf(node);
  const check = checkOptions(node, opts);
  if (inbox.rounds.has(opts.round) || inbox.finished.has(opts.round)) {
    throw new HearthError(
      'input/invalid',
      `Round ${JSON.stringify(opts.round)} already ran on this peer; give each round its own id.`,
    );
  }
  const ownHash = await sha256Hex(opts.tensor);
  const groupHash = await sha256Hex(new TextEncoder().encode(JSON.stringify(opts.group)));
  const signature = await signContribution(opts, ownHash);
  // Checked again after the awaits: another call may have started this round meanwhile.
  if (inbox.rounds.has(opts.round)) {
    throw new HearthError(
      'input/invalid',
      `Round ${JSON.stringify(opts.round)} is already running on this peer.`,
    );
  }
  const sent0 = node.bytesSent;
  const received0 = node.bytesReceived;
  const run = new RoundRun(node, opts, check.self, ownHash, groupHash, signature);
  inbox.rounds.set(opts.round, run);
  let cause: HearthError;
  try {
    for (const e of inbox.takeEarly(opts.round)) run.take(e.from, e.bytes);
    return await run.run();
  } catch (e) {
    if (!opts.fallback || !isHearthError(e) || !FALLBACK_CODES.has(e.code)) throw e;
    cause = e;
  } finally {
    run.end();
    inbox.rounds.delete(opts.round);
    inbox.remember(opts.round);
  }
  const got = await opts.fallback({
    round: opts.round,
    group: opts.group,
    self: node.id,
    tensor: opts.tensor,
    sha256: ownHash,
    cause,
  });
  const contributors = new Set(got.contributors);
  return {
    mean: got.mean,
    contributors: opts.group.filter((p) => contributors.has(p)),
    contributions: got.contributions,
    dropped: opts.group
      .filter((p) => !contributors.has(p))
      .map((peer) => ({
        peer,
        error: new HearthError('net/unreachable', `Peer ${peer} is not in the hub's mean of this round.`, {
          details: { peer, round: opts.round },
        }),
      })),
    attempts: run.attempts,
    via: 'hub',
    fallbackCause: cause,
    bytesSent: node.bytesSent - sent0,
    bytesReceived: node.bytesReceived - received0,
  };
}

/** Ring failures that a fallback may take over. */
const FALLBACK_CODES: ReadonlySet<string> = new Set(['net/unreachable', 'net/timeout', 'net/refused']);

async function signContribution(opts: AllReduceOptions, sha256: string): Promise<string | undefined> {
  const sign = opts.identity?.sign;
  if (!sign) return undefined;
  let signature: unknown;
  try {
    signature = await sign(contributionMessage(opts.round, sha256));
  } catch (e) {
    throw new HearthError('input/invalid', `allReduceMean: signing the contribution failed: ${String(e)}.`, {
      cause: e,
    });
  }
  if (
    typeof signature !== 'string' ||
    signature.length < 1 ||
    signature.length > MAX_SIGNATURE_CHARS ||
    !/^[A-Za-z0-9_-]+$/.test(signature)
  ) {
    throw new HearthError(
      'input/invalid',
      `allReduceMean: identity.sign must resolve with 1 to ${MAX_SIGNATURE_CHARS} base64url characters.`,
    );
  }
  return signature;
}

function checkOptions(node: PeerNode, o: AllReduceOptions): { self: number } {
  const invalid = (what: string) => new HearthError('input/invalid', `allReduceMean: ${what}.`);
  const roundBytes = new TextEncoder().encode(o.round).byteLength;
  if (typeof o.round !== 'string' || roundBytes < 1 || roundBytes > MAX_ROUND_ID_BYTES) {
    throw invalid(`the round id must be 1 to ${MAX_ROUND_ID_BYTES} UTF-8 bytes`);
  }
  if (!Array.isArray(o.group) || o.group.length < 2 || o.group.length > MAX_GROUP) {
    throw invalid(`the group must name 2 to ${MAX_GROUP} peers`);
  }
  if (new Set(o.group).size !== o.group.length || o.group.some((p) => typeof p !== 'string' || !p)) {
    throw invalid('the group names a peer twice, or an empty id');
  }
  const self = o.group.indexOf(node.id);
  if (self < 0) throw invalid(`the group does not include this peer (${node.id})`);
  if (!(o.tensor instanceof Float32Array) || o.tensor.length < 1 || o.tensor.length > 0xffff_ffff) {
    throw invalid('the tensor must be a non-empty Float32Array');
  }
  if (o.identity && new TextEncoder().encode(o.identity.volunteer).byteLength > MAX_IDENTITY_BYTES) {
    throw invalid(`the volunteer identity must be at most ${MAX_IDENTITY_BYTES} UTF-8 bytes`);
  }
  if (o.timeoutMs !== undefined && !(o.timeoutMs > 0)) throw invalid('timeoutMs must be positive');
  return { self };
}
