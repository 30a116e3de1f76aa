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
import { type Deferred, deferred } from '../core/deferred.ts';
import { HearthError, isHearthError } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import {
  type AllReduceMessage,
  type AllReducePhase,
  contributionMessage,
  decodeAllReduce,
  encodeAllReduce,
  type ForwardedContribution,
  isAllReduceMessage,
  MAX_GROUP,
  MAX_IDENTITY_BYTES,
  MAX_ROUND_ID_BYTES,
  MAX_SIGNATURE_CHARS,
  peekRound,
} from '../protocol/allreduce.ts';
import type { PeerLink, ReceivedStream } from './peer-link.ts';
import type { PeerNode } from './peer-node.ts';

/** Default time budget of a whole round, restarts included. */
export const DEFAULT_ALLREDUCE_TIMEOUT_MS = 120_000;
/** Messages for rounds that have not started here are kept up to this many bytes in all. */
const EARLY_LIMIT_BYTES = 256 * 1024 * 1024;
/** …and this long. */
const EARLY_TTL_MS = 60_000;
/** Finished round ids remembered, so their late messages are dropped rather than kept. */
const FINISHED_MEMORY = 1024;

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
 * attachAllReduce(node); // right after PeerNode.open, so early messages are kept
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
  const run = new RoundRun(node, inbox, opts, check.self, ownHash, groupHash, signature);
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

// ---- the per-node inbox -----------------------------------------------------------------------

interface Early {
  readonly from: string;
  readonly bytes: Uint8Array;
  readonly at: number;
}

/** Routes a node's pushed all-reduce messages to the round they name. One per node. */
class Inbox {
  readonly rounds = new Map<string, RoundRun>();
  readonly finished = new Set<string>();
  readonly #early = new Map<string, Early[]>();
  #earlyBytes = 0;

  take(s: ReceivedStream): void {
    if (s.kind !== 'blob' || !isAllReduceMessage(s.bytes)) return; // someone else's push
    const round = peekRound(s.bytes);
    if (round === undefined) {
      // Unreadable even to its round id: the sender is broken or hostile in whatever round it is in.
      const err = new HearthError(
        'net/protocol',
        `Peer ${s.from} sent an all-reduce message without a readable round id.`,
        {
          details: { peer: s.from, field: 'round' },
        },
      );
      for (const run of this.rounds.values()) run.reject(s.from, err);
      return;
    }
    const run = this.rounds.get(round);
    if (run) {
      run.take(s.from, s.bytes);
      return;
    }
    if (this.finished.has(round)) return; // a late frame of a round that is over
    // A neighbour can start a round a moment before this peer does; keep its first messages.
    this.#expire();
    if (this.#earlyBytes + s.bytes.byteLength > EARLY_LIMIT_BYTES) return;
    const list = this.#early.get(round) ?? [];
    list.push({ from: s.from, bytes: s.bytes, at: performance.now() });
    this.#early.set(round, list);
    this.#earlyBytes += s.bytes.byteLength;
  }

  takeEarly(round: string): Early[] {
    const list = this.#early.get(round) ?? [];
    this.#early.delete(round);
    for (const e of list) this.#earlyBytes -= e.bytes.byteLength;
    return list;
  }

  remember(round: string): void {
    this.finished.add(round);
    if (this.finished.size > FINISHED_MEMORY)
      this.finished.delete(this.finished.values().next().value as string);
  }

  #expire(): void {
    const old = performance.now() - EARLY_TTL_MS;
    for (const [round, list] of this.#early) {
      if (list[0] && list[0].at < old) this.takeEarly(round);
    }
  }
}

const inboxes = new WeakMap<PeerNode, Inbox>();

/**
 * Makes `node` take all-reduce messages (idempotent). {@link allReduceMean} calls it too; call it
 * right after opening the node so that a neighbour's messages that arrive before this peer starts
 * a round are kept (until then the node refuses pushes and neighbours retry).
 */
export function attachAllReduce(node: PeerNode): void {
  inboxOf(node);
}

function inboxOf(node: PeerNode): Inbox {
  let inbox = inboxes.get(node);
  if (!inbox) {
    const made = new Inbox();
    node.addPushListener((s) => made.take(s));
    inboxes.set(node, made);
    inbox = made;
  }
  return inbox;
}

// ---- one round --------------------------------------------------------------------------------

/** Thrown inside an attempt when the member set changed; the round loop starts the next one. */
const RESTART = Symbol('restart');

const mod = (a: number, n: number) => ((a % n) + n) % n;

/** Element range [start, start + length) of chunk `k` when `total` elements split into `n`. */
function chunkRange(total: number, n: number, k: number): [number, number] {
  const base = Math.floor(total / n);
  const rem = total % n;
  return [k * base + Math.min(k, rem), base + (k < rem ? 1 : 0)];
}

interface Attempt {
  readonly number: number;
  /** The dropped set this attempt runs without, as a string (its name in `pending` keys). */
  readonly key: string;
  readonly members: readonly string[];
  readonly rank: number;
  readonly aborted: Deferred<never>;
  waiter?: { readonly key: string; readonly got: Deferred<AllReduceMessage> };
}

class RoundRun {
  readonly #node: PeerNode;
  readonly #opts: AllReduceOptions;
  readonly #self: number;
  readonly #ownHash: string;
  readonly #groupHash: string;
  readonly #signature: string | undefined;
  readonly #index: Map<string, number>;
  /** Group indices left out, and why. Only grows. */
  readonly #dropped = new Map<number, HearthError>();
  /** Messages of the current member set that no step has asked for yet, by `key/phase/step`. */
  readonly #pending = new Map<string, AllReduceMessage>();
  readonly #stop = deferred<never>();
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #watched = new WeakSet<PeerLink>();
  #attempt: Attempt | undefined;
  #ended = false;

  constructor(
    node: PeerNode,
    _inbox: Inbox,
    opts: AllReduceOptions,
    self: number,
    ownHash: string,
    groupHash: string,
    signature: string | undefined,
  ) {
    this.#signature = signature;
    this.#node = node;
    this.#opts = opts;
    this.#self = self;
    this.#ownHash = ownHash;
    this.#groupHash = groupHash;
    this.#index = new Map(opts.group.map((p, i) => [p, i]));
    const ms = opts.timeoutMs ?? DEFAULT_ALLREDUCE_TIMEOUT_MS;
    this.#timer = setTimeout(() => {
      const a = this.#attempt;
      this.#stop.reject(
        new HearthError(
          'net/timeout',
          `All-reduce round ${JSON.stringify(opts.round)} did not finish within ${ms} ms` +
            (a
              ? ` (attempt ${a.number} among ${a.members.length} peers${a.waiter ? `, waiting for ${a.waiter.key}` : ''})`
              : '') +
            '; average through the hub or run the round again.',
          { details: { round: opts.round, dropped: this.#droppedPeers(), waiting: a?.waiter?.key } },
        ),
      );
    }, ms);
  }

  /** Attempts started so far. */
  get attempts(): number {
    return this.#attempt?.number ?? 0;
  }

  async run(): Promise<AllReduceResult> {
    const sent0 = this.#node.bytesSent;
    const received0 = this.#node.bytesReceived;
    for (let number = 1; ; number++) {
      const members = this.#opts.group.filter((_, i) => !this.#dropped.has(i));
      if (members.length < 2) {
        throw new HearthError(
          'net/unreachable',
          `All-reduce round ${JSON.stringify(this.#opts.round)}: fewer than 2 peers remain (${this.#droppedPeers()
            .map((d) => `${d.peer}: ${d.error.code}`)
            .join(', ')}); average through the hub.`,
          {
            details: {
              round: this.#opts.round,
              dropped: this.#droppedPeers().map((d) => ({ peer: d.peer, error: d.error.toJSON() })),
            },
          },
        );
      }
      const key = this.#key();
      const attempt: Attempt = {
        number,
        key,
        members,
        rank: members.indexOf(this.#opts.group[this.#self]),
        aborted: deferred(),
      };
      this.#attempt = attempt;
      for (const k of this.#pending.keys()) if (!k.startsWith(`${key}/`)) this.#pending.delete(k);
      try {
        const { mean, contributions } = await this.#ring(attempt);
        return {
          mean,
          contributors: members,
          contributions,
          dropped: this.#droppedPeers(),
          attempts: number,
          via: 'ring',
          bytesSent: this.#node.bytesSent - sent0,
          bytesReceived: this.#node.bytesReceived - received0,
        };
      } catch (e) {
        if (e !== RESTART) throw e;
      }
    }
  }

  /** Stops timers and wakes nothing further; called once the round resolved or failed. */
  end(): void {
    this.#ended = true;
    clearTimeout(this.#timer);
    this.#attempt?.aborted.reject(RESTART);
  }

  /** A message from `from` that could not be decoded at all: drop the sender. */
  reject(from: string, err: HearthError): void {
    const i = this.#index.get(from);
    if (i !== undefined && i !== this.#self) this.#drop(i, err, true);
  }

  /** A pushed, hash-verified message for this round. */
  take(from: string, bytes: Uint8Array): void {
    const i = this.#index.get(from);
    // Strangers are not in the round; their bytes cost nothing more than the push did.
    if (i === undefined || i === this.#self || this.#dropped.has(i) || this.#ended) return;
    const bad = this.#admit(from, i, bytes);
    if (bad) this.#drop(i, bad, true);
  }

  /** Files a message for its step, or says why its sender must be dropped. */
  #admit(from: string, i: number, bytes: Uint8Array): HearthError | undefined {
    const protocol = (what: string, field: string) =>
      new HearthError(
        'net/protocol',
        `Peer ${from} sent a bad all-reduce message in round ${JSON.stringify(this.#opts.round)}: ${what}; it was dropped from the round.`,
        {
          details: { peer: from, round: this.#opts.round, field },
        },
      );
    let m: AllReduceMessage;
    try {
      m = decodeAllReduce(bytes);
    } catch (e) {
      const err = isHearthError(e) ? e : protocol(String(e), 'message');
      return protocol(err.message, String(err.details.field ?? 'message'));
    }
    const G = this.#opts.group.length;
    if (m.groupSize !== G || m.group !== this.#groupHash) {
      return protocol('it runs the round with another group or group order', 'group');
    }
    if (m.totalElements !== this.#opts.tensor.length) {
      return protocol(
        `its tensor has ${m.totalElements} elements, not ${this.#opts.tensor.length}`,
        'totalElements',
      );
    }
    if (m.dropped.includes(this.#self)) {
      this.#stop.reject(
        new HearthError(
          'net/refused',
          `Peer ${from} went on with round ${JSON.stringify(this.#opts.round)} without this peer (it seemed gone); average through the hub.`,
          {
            details: { peer: from, round: this.#opts.round },
          },
        ),
      );
      return undefined;
    }
    // A larger dropped set is news: adopt it (which restarts the attempt). A smaller one is stale.
    let stale = false;
    for (const d of this.#dropped.keys()) if (!m.dropped.includes(d)) stale = true;
    for (const d of m.dropped) {
      if (!this.#dropped.has(d)) {
        const peer = this.#opts.group[d];
        this.#drop(
          d,
          new HearthError('net/unreachable', `Peer ${from} reports that ${peer} dropped out of the round.`, {
            details: { peer, reportedBy: from },
          }),
          false,
        );
      }
    }
    if (stale || this.#dropped.has(i)) return undefined;
    // Now m is for the current member set: check it against the ring that set makes.
    const members = this.#opts.group.filter((_, j) => !this.#dropped.has(j));
    const n = members.length;
    const r = members.indexOf(this.#opts.group[this.#self]);
    const left = mod(r - 1, n);
    if (members[left] !== from) return protocol('it is not this peer’s left neighbour in the ring', 'from');
    if (m.step > n - 2) return protocol(`step ${m.step} is past the last (${n - 2})`, 'step');
    const chunk = m.phase === 'reduce' ? mod(left - m.step, n) : mod(left + 1 - m.step, n);
    if (m.chunk !== chunk)
      return protocol(`chunk ${m.chunk} at ${m.phase} step ${m.step}, expected ${chunk}`, 'chunk');
    const [, length] = chunkRange(m.totalElements, n, chunk);
    if (m.payload.length !== length)
      return protocol(`chunk ${chunk} holds ${m.payload.length} elements, not ${length}`, 'elements');
    if (m.phase === 'reduce') {
      const expected = this.#index.get(members[mod(left - m.step, n)]);
      if (m.contribution?.index !== expected)
        return protocol(
          `forwards the contribution of member ${m.contribution?.index}, expected ${expected}`,
          'contribution',
        );
    }
    const key = `${this.#key()}/${m.phase}/${m.step}`;
    if (this.#pending.has(key)) return protocol(`a second message for ${m.phase} step ${m.step}`, 'step');
    const w = this.#attempt?.waiter;
    if (w && w.key === key && !w.got.settled) w.got.resolve(m);
    else this.#pending.set(key, m);
    return undefined;
  }

  // ---- the ring ----------------------------------------------------------------------------

  async #ring(a: Attempt): Promise<{ mean: Float32Array; contributions: Contribution[] }> {
    const n = a.members.length;
    const r = a.rank;
    const L = this.#opts.tensor.length;
    const group = this.#opts.group;
    const right = a.members[mod(r + 1, n)];
    const link = await this.#guard(a, this.#connect(a, right));
    // Partial sums of an aborted attempt include dropped members: every attempt starts afresh.
    const work = Float32Array.from(this.#opts.tensor);
    const chunk = (k: number) => {
      const [start, length] = chunkRange(L, n, k);
      return work.subarray(start, start + length);
    };
    const seen = new Map<number, ForwardedContribution>();
    seen.set(this.#self, {
      index: this.#self,
      sha256: this.#ownHash,
      ...(this.#opts.identity ? { volunteer: this.#opts.identity.volunteer } : {}),
      ...(this.#signature ? { signature: this.#signature } : {}),
    });
    const common = {
      round: this.#opts.round,
      totalElements: L,
      groupSize: group.length,
      group: this.#groupHash,
      dropped: [...this.#dropped.keys()].sort((x, y) => x - y),
    };

    // Reduce-scatter: at step s send chunk r−s (own values plus what arrived for it at s−1) and
    // the contribution hash that arrived at s−1; receive chunk r−s−1 and add this peer's share.
    for (let s = 0; s < n - 1; s++) {
      this.#progress(a, 'reduce', s);
      const sendChunk = mod(r - s, n);
      const forwarded = seen.get(this.#index.get(a.members[mod(r - s, n)]) as number);
      const sent = this.#send(
        a,
        link,
        encodeAllReduce({
          ...common,
          phase: 'reduce',
          step: s,
          chunk: sendChunk,
          contribution: forwarded as ForwardedContribution,
          payload: chunk(sendChunk),
        }),
      );
      const m = await this.#guard(a, this.#receive(a, 'reduce', s));
      const mine = chunk(mod(r - s - 1, n));
      // received + local, one f32 rounding per element: the fixed walk order makes it deterministic.
      for (let i = 0; i < mine.length; i++) mine[i] = m.payload[i] + mine[i];
      const c = m.contribution as ForwardedContribution;
      seen.set(c.index, c);
      await this.#guard(a, sent);
    }
    const owned = chunk(mod(r + 1, n));
    for (let i = 0; i < owned.length; i++) owned[i] = owned[i] / n;

    const list: Contribution[] = a.members.map((peer) => {
      const c = seen.get(this.#index.get(peer) as number) as ForwardedContribution;
      return {
        peer,
        sha256: c.sha256,
        ...(c.volunteer === undefined ? {} : { volunteer: c.volunteer }),
        ...(c.signature === undefined ? {} : { signature: c.signature }),
      };
    });
    const digest = await this.#guard(a, sha256Hex(new TextEncoder().encode(JSON.stringify(list))));

    // All-gather: pass finished chunks on; the payload is the owner's bits, copied, never re-summed.
    for (let s = 0; s < n - 1; s++) {
      this.#progress(a, 'gather', s);
      const sendChunk = mod(r + 1 - s, n);
      const sent = this.#send(
        a,
        link,
        encodeAllReduce({
          ...common,
          phase: 'gather',
          step: s,
          chunk: sendChunk,
          digest,
          payload: chunk(sendChunk),
        }),
      );
      const m = await this.#guard(a, this.#receive(a, 'gather', s));
      if (m.digest !== digest) {
        throw new HearthError(
          'net/protocol',
          `Peers disagree on the contributions of round ${JSON.stringify(this.#opts.round)} (a peer told its neighbours different hashes); run the round again and check each contribution.`,
          { details: { round: this.#opts.round, from: a.members[mod(r - 1, n)], digest, theirs: m.digest } },
        );
      }
      chunk(mod(r - s, n)).set(m.payload);
      await this.#guard(a, sent);
    }
    return { mean: work, contributions: list };
  }

  /** Connects to a member; a member that cannot be reached is dropped (and the attempt restarts). */
  async #connect(a: Attempt, peer: string): Promise<PeerLink> {
    let link: PeerLink;
    try {
      link = await this.#node.connect(peer);
    } catch (e) {
      this.#drop(this.#index.get(peer) as number, toHearth(e, peer), false);
      return a.aborted.promise;
    }
    if (!this.#watched.has(link)) {
      this.#watched.add(link);
      // The far side's death fires nothing in PeerJS; the link's own heartbeat closes it.
      link.closed.then((err) => {
        const i = this.#index.get(link.peer);
        if (!this.#ended && i !== undefined && this.#attempt?.members.includes(link.peer))
          this.#drop(i, err, false);
      });
    }
    return link;
  }

  /**
   * Pushes one message to the right neighbour and resolves on its acknowledgement. A push that is
   * refused as busy, or because the neighbour has not attached yet, is retried; a dead link drops
   * the neighbour. Never rejects: failures act on the round instead.
   */
  async #send(a: Attempt, link: PeerLink, bytes: Uint8Array): Promise<void> {
    for (let tries = 0; ; tries++) {
      try {
        await link.sendBlob(bytes);
        return;
      } catch (e) {
        if (a.aborted.settled || this.#ended) return;
        const err = toHearth(e, link.peer);
        const reason = err.details.reason;
        if (err.code === 'net/refused' && (reason === 'busy' || reason === 'refused')) {
          await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** tries, 1000)));
          if (a.aborted.settled || this.#ended) return;
          continue;
        }
        if (err.code === 'net/refused' && reason === 'too-large') {
          this.#stop.reject(
            new HearthError(
              'net/refused',
              `Peer ${link.peer} refuses all-reduce chunks of ${bytes.byteLength} bytes (${err.message}); raise its maxPushBytes or use more peers.`,
              {
                cause: err,
                details: { peer: link.peer, bytes: bytes.byteLength },
              },
            ),
          );
          return;
        }
        this.#drop(this.#index.get(link.peer) as number, err, false);
        return;
      }
    }
  }

  #receive(a: Attempt, phase: AllReducePhase, step: number): Promise<AllReduceMessage> {
    const key = `${a.key}/${phase}/${step}`;
    const have = this.#pending.get(key);
    if (have) {
      this.#pending.delete(key);
      return Promise.resolve(have);
    }
    const got = deferred<AllReduceMessage>();
    a.waiter = { key, got };
    return got.promise;
  }

  /** `p`, unless the attempt is aborted, the round fails or its time runs out first. */
  #guard<T>(a: Attempt, p: Promise<T>): Promise<T> {
    // Abort and stop come first: when several have settled, the restart or failure wins.
    return Promise.race([a.aborted.promise, this.#stop.promise, p]);
  }

  #drop(i: number, err: HearthError, blame: boolean): void {
    if (this.#dropped.has(i) || i === this.#self || this.#ended) return;
    const peer = this.#opts.group[i];
    this.#dropped.set(i, err);
    if (blame) this.#node.scores.penalize(peer, err.code);
    const a = this.#attempt;
    if (a?.members.includes(peer)) a.aborted.reject(RESTART);
  }

  #key(): string {
    return [...this.#dropped.keys()].sort((x, y) => x - y).join(',') || '-';
  }

  #droppedPeers(): { peer: string; error: HearthError }[] {
    return [...this.#dropped]
      .sort(([x], [y]) => x - y)
      .map(([i, error]) => ({ peer: this.#opts.group[i], error }));
  }

  #progress(a: Attempt, phase: AllReducePhase, step: number): void {
    try {
      this.#opts.onStep?.({ attempt: a.number, members: a.members, phase, step });
    } catch {
      // A progress meter's bug must not break the round.
    }
  }
}

function toHearth(e: unknown, peer: string): HearthError {
  return isHearthError(e)
    ? e
    : new HearthError('net/unreachable', `Peer ${peer}: ${String(e)}`, { cause: e, details: { peer } });
}
