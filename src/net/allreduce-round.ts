// One all-reduce round on this peer: the ring (reduce-scatter, then all-gather) over PeerLink
// pushes, attempt after attempt as members drop out. allreduce.ts says why it is built this way
// (a ring; bit-identical sums; restarts named by the dropped set; signed contributions).
import { at } from '../core/at.ts';
import { type Deferred, deferred } from '../core/deferred.ts';
import { HearthError, isHearthError } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import {
  type AllReduceMessage,
  type AllReducePhase,
  decodeAllReduce,
  encodeAllReduce,
  type ForwardedContribution,
} from '../protocol/allreduce.ts';
import type { AllReduceOptions, AllReduceResult, Contribution } from './allreduce.ts';
import type { PeerLink } from './peer-link.ts';
import type { PeerNode } from './peer-node.ts';

/** Default time budget of a whole round, restarts included. */
export const DEFAULT_ALLREDUCE_TIMEOUT_MS = 120_000;

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

/**
 * A round as this peer runs it: `run()` resolves with the mean or fails; `take` and `reject` are
 * fed by the inbox; `end()` once it is over.
 */
export class RoundRun {
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
        rank: members.indexOf(at(this.#opts.group, this.#self, 'all-reduce group')),
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
    const r = members.indexOf(at(this.#opts.group, this.#self, 'all-reduce group'));
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
      const expected = this.#index.get(at(members, mod(left - m.step, n), 'ring members'));
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
    const right = at(a.members, mod(r + 1, n), 'ring members');
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
      const forwarded = seen.get(this.#index.get(at(a.members, mod(r - s, n), 'ring members')) as number);
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
      // #admit checked that the payload is exactly this chunk's length.
      for (let i = 0; i < mine.length; i++) mine[i] = (m.payload[i] as number) + (mine[i] as number);
      const c = m.contribution as ForwardedContribution;
      seen.set(c.index, c);
      await this.#guard(a, sent);
    }
    const owned = chunk(mod(r + 1, n));
    for (let i = 0; i < owned.length; i++) owned[i] = (owned[i] as number) / n;

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
    const peer = at(this.#opts.group, i, 'all-reduce group');
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
      .map(([i, error]) => ({ peer: at(this.#opts.group, i, 'all-reduce group'), error }));
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
