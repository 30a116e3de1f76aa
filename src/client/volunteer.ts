// The volunteer runtime: ties a compute engine (the worker behind comlink in a tab, the engine
// itself in Node), a result outbox and a blob store to one hub. It connects and proves its
// identity, sends what the outbox still holds, then loops: lease → fetch blobs → run (with
// heartbeats) → outbox → result → ack. A dropped connection is retried with jittered exponential
// backoff; results wait in the outbox meanwhile, so a reload or a blip loses no finished work
// that the hub can still take.
//
// Consent (DESIGN.md invariant 1) is the caller's job: construct and start this only after the
// volunteer said yes. Nothing here touches the GPU before `start()`.
import { HearthError, isHearthError } from '../core/errors.ts';
import type { PeerNode } from '../net/peer-node.ts';
import {
  CONTROL_LIMITS,
  encodeResult,
  FINAL_REFUSALS,
  type HubMessageOf,
  type LeaseMessage,
  type ReplyOf,
} from '../protocol/control.ts';
import { parseCreditWire } from '../protocol/credit.ts';
import { parseShardWork } from '../protocol/kinds/index.ts';
import type { ShardResult } from '../protocol/shard.ts';
import { BlobFetcher, type PeerBlobSource } from './blobs.ts';
import { clampDuty, restAfter } from './duty-cycle.ts';
import { HubSession, isHubRefusal } from './hub-session.ts';
import { shardFromLease } from './lease-shard.ts';
import { leaseOfNote, noteOf, resumable } from './unfinished.ts';
import type { VolunteerEvent, VolunteerOptions, VolunteerState, VolunteerStats } from './volunteer-types.ts';

export { DUTY_CYCLE, restAfter } from './duty-cycle.ts';
export { MemoryResultQueue, type ResultQueue, type ShardRunner } from './runner.ts';
export type { VolunteerEvent, VolunteerOptions, VolunteerState, VolunteerStats } from './volunteer-types.ts';

/**
 * A volunteer connected to one hub.
 *
 * @example
 * const v = new Volunteer({ hubUrl, identity, capabilities, runner: worker, outbox, blobs: cache });
 * v.start();            // only after the volunteer's yes
 * await v.stop();       // finishes nothing new; the outbox keeps what was not acknowledged
 */
export class Volunteer {
  readonly stats: VolunteerStats = {
    leases: 0,
    pending: 0,
    valid: 0,
    invalid: 0,
    inconclusive: 0,
    refused: 0,
    failed: 0,
    downloadedBytes: 0,
    peerBytes: 0,
    computeMs: 0,
    peerHolders: 0,
    peerFallbacks: 0,
    peerStalls: 0,
    peerWaitsExpired: 0,
    lastPeerFallback: '',
    fetchStartedAt: 0,
    fetchDoneAt: 0,
    checkpoints: 0,
    resumed: 0,
    resumedSteps: 0,
  };
  readonly #opts: VolunteerOptions;
  readonly #fetcher: BlobFetcher;
  #state: VolunteerState = 'idle';
  #session: HubSession | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;
  #wake: (() => void) | undefined;
  /** Idle rounds in a row (no work): the back-off's exponent. */
  #idle = 0;
  #current: string | undefined;
  #peer: PeerNode | undefined;
  #duty: number;
  #paused: boolean;
  /** `hubUrl` then `hubUrls`, without repeats; `#hub` indexes the one in use. */
  readonly #hubs: readonly string[];
  #hub = 0;

  constructor(opts: VolunteerOptions) {
    this.#opts = opts;
    this.#hubs = [...new Set([opts.hubUrl, ...(opts.hubUrls ?? [])])];
    this.#duty = opts.dutyCycle === undefined ? 1 : clampDuty(opts.dutyCycle);
    this.#paused = opts.paused === true;
    this.#fetcher = new BlobFetcher({
      hubUrl: opts.hubUrl,
      store: opts.blobs,
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
    });
  }

  get state(): VolunteerState {
    return this.#state;
  }

  /** The hub this volunteer is connected to, or will try next. */
  get hubUrl(): string {
    return this.#hubs[this.#hub] ?? this.#opts.hubUrl;
  }

  /** The hub's id for this volunteer once connected. */
  get volunteerId(): string | undefined {
    return this.#session?.volunteerId;
  }

  /** Starts connecting and working; idempotent. */
  start(): void {
    if (this.#loop) return;
    this.#stopping = false;
    this.#loop = this.#run().finally(() => {
      this.#loop = undefined;
      this.#set('stopped');
    });
  }

  /**
   * Stops: cancels the shard in progress (its lease expires on the hub), closes the connection.
   * Results already in the outbox stay there for the next start.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    if (this.#current) await this.#opts.runner.cancel(this.#current);
    this.#session?.close();
    await this.#loop;
  }

  /** The GPU cap now, in [0.1, 1]. */
  /**
   * Binds this volunteer to a wallet's address by Sign-In with Ethereum over the live hub
   * connection: asks the hub for terms, has `sign` build and sign the message, sends it. The
   * bound address. Refused (`control/bad-state`) while not connected.
   */
  async signIn(
    sign: (terms: HubMessageOf<'siwe-terms'>) => Promise<{ message: string; signature: string }>,
  ): Promise<string> {
    const s = this.#session;
    if (!s) {
      throw new HearthError(
        'control/bad-state',
        'not connected to the hub yet: sign in once the meter says connected.',
      );
    }
    const terms = await s.request({ type: 'siwe-request' });
    const { message, signature } = await sign(terms);
    return (await s.request({ type: 'siwe-bind', message, signature })).address;
  }

  get dutyCycle(): number {
    return this.#duty;
  }

  /** Changes the GPU cap; a rest in progress is cut short and recomputed by the next shard. */
  setDutyCycle(duty: number): void {
    this.#duty = clampDuty(duty);
    if (this.#state === 'resting') this.#wake?.();
  }

  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Stops GPU work now and asks for none until `resume()`: the shard in progress is cancelled and
   * handed back to the hub (someone else runs it at once); the connection stays open, so
   * results in flight are still delivered.
   */
  async pause(): Promise<void> {
    if (this.#paused) return;
    this.#paused = true;
    this.#wake?.();
    const current = this.#current;
    if (current) await this.#opts.runner.cancel(current);
  }

  /** Asks for work again after `pause()`. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#wake?.();
  }

  #emit(e: VolunteerEvent): void {
    try {
      this.#opts.onEvent?.(e);
    } catch {
      // A UI listener that throws must not stop the work loop.
    }
  }

  #set(state: VolunteerState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit({ type: 'state', state });
  }

  /** Waits `ms`, or less when stop() is called. */
  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.#wake = done;
    });
  }

  async #run(): Promise<void> {
    const minMs = this.#opts.backoff?.minMs ?? 250;
    const maxMs = this.#opts.backoff?.maxMs ?? 30_000;
    const random = this.#opts.random ?? Math.random;
    let failures = 0;
    while (!this.#stopping) {
      this.#set('connecting');
      let error: HearthError;
      const hubUrl = this.hubUrl;
      this.#fetcher.hubUrl = hubUrl;
      try {
        const session = await HubSession.open({
          hubUrl,
          identity: this.#opts.identity,
          capabilities: this.#opts.capabilities,
          ...(this.#opts.socket ? { socket: this.#opts.socket } : {}),
          ...(this.#opts.replyTimeoutMs ? { replyTimeoutMs: this.#opts.replyTimeoutMs } : {}),
          follow: ['credit'],
          ...(this.#opts.embed ? { embed: this.#opts.embed } : {}),
        });
        this.#session = session;
        session.onPush((m) => {
          if (m.type === 'credit') this.#onCredit(m);
        });
        failures = 0;
        await this.#joinSwarm(session);
        this.#set('connected');
        this.#emit({ type: 'connected', volunteerId: session.volunteerId });
        await this.#flushOutbox(session);
        await this.#resumeUnfinished(session);
        await this.#work(session);
        if (this.#stopping) break;
        error = await session.closed;
        if (error.details.hubCode === 'control/replaced') {
          // Reconnecting would replace the other connection in turn: two tabs would take the
          // identity back and forth forever. The other one works; this one stops.
          this.#emit({ type: 'replaced', message: error.message });
          this.#stopping = true;
          break;
        }
      } catch (e) {
        error = isHearthError(e)
          ? e
          : new HearthError('net/unreachable', `Volunteer loop: ${(e as Error)?.message ?? String(e)}`, {
              cause: e,
            });
      } finally {
        this.#session?.close();
        this.#session = undefined;
        this.#leaveSwarm();
      }
      if (this.#stopping) break;
      // The next hub of the list; the back-off counts whole rounds of the list that all failed.
      this.#hub = (this.#hub + 1) % this.#hubs.length;
      const rounds = Math.floor(failures / this.#hubs.length);
      const base = Math.min(maxMs, minMs * 2 ** Math.min(rounds, 30));
      const retryInMs = Math.round(base * (0.5 + random() / 2));
      failures++;
      this.#emit({ type: 'disconnected', error, retryInMs });
      this.#set('waiting');
      await this.#sleep(retryInMs);
    }
  }

  /**
   * Opens this connection's peer (the id is the hub's, so holders it names are volunteers it
   * authenticated) and points the blob fetcher at the swarm. A peer that cannot open leaves the
   * volunteer on the hub's route: the swarm saves bandwidth, it is never needed.
   */
  async #joinSwarm(session: HubSession): Promise<void> {
    const p2p = this.#opts.p2p;
    if (!p2p || !session.peerId) return;
    try {
      const { PeerNode } = await import('../net/peer-node.ts');
      this.#peer = await PeerNode.open({ ...p2p, id: session.peerId, source: this.#opts.blobs });
    } catch (e) {
      this.#emit({
        type: 'swarm',
        peerId: session.peerId,
        error: isHearthError(e)
          ? e
          : new HearthError('net/unreachable', `peer: ${(e as Error)?.message ?? e}`),
      });
      return;
    }
    this.#emit({ type: 'swarm', peerId: session.peerId });
    const peer = this.#peer;
    const announced = new Set<string>();
    const source: PeerBlobSource = {
      holders: async (sha256) => {
        try {
          const m = await session.request({ type: 'holders-request', sha256 });
          return { peers: [...m.peers], fetching: m.fetching ?? 0, partial: [...(m.partial ?? [])] };
        } catch (e) {
          // The hub keeps no swarm after all, or refused: the hub's route serves the blob.
          if (isHubRefusal(e)) return { peers: [], fetching: 0 };
          throw e;
        }
      },
      fetch: async (holders, sha256, options) => {
        const { bytes, attempts } = await peer.fetchBlob(holders, sha256, options ?? {});
        const served = new Set(attempts.filter((a) => a.pieces > 0).map((a) => a.peer)).size;
        this.stats.peerHolders = Math.max(this.stats.peerHolders, served);
        return bytes;
      },
      announce: (sha256) => {
        if (announced.has(sha256)) return;
        announced.add(sha256);
        session.request({ type: 'announce', blobs: [sha256] }).catch(() => {});
      },
    };
    this.#fetcher.peers = source;
  }

  #onCredit(m: { granted: string; pending: string; pendingResults: number; address?: string }): void {
    try {
      this.#emit({
        type: 'credit',
        granted: parseCreditWire(m.granted, 'credit.granted'),
        pending: parseCreditWire(m.pending, 'credit.pending'),
        pendingResults: m.pendingResults,
        ...(m.address ? { address: m.address } : {}),
      });
    } catch {
      // Over the 64-bit bound: a hub's mistake, not worth a reconnect; the next push may do.
    }
  }

  #leaveSwarm(): void {
    this.#fetcher.peers = undefined;
    this.#peer?.close();
    this.#peer = undefined;
  }

  /** Sends every result still in the outbox (from before a reload or a dropped connection). */
  async #flushOutbox(session: HubSession): Promise<void> {
    for (const r of await this.#opts.outbox.pending()) {
      if (this.#stopping) return;
      await this.#send(session, r);
    }
  }

  /** Sends one result and settles it in the outbox by the hub's answer. */
  async #send(session: HubSession, r: ShardResult): Promise<void> {
    let reply: ReplyOf<'result'>;
    try {
      reply = await session.request({ type: 'result', result: encodeResult(r) });
    } catch (e) {
      if (!isHubRefusal(e) || !FINAL_REFUSALS.has(e.code)) {
        // 'control/internal', a lost connection and the rest: keep it, the next connection tries again.
        throw isHubRefusal(e)
          ? new HearthError('net/refused', `The hub did not take result ${r.shard}: ${e.message}`, {
              cause: e,
            })
          : e;
      }
      // The hub will never take this one (its shard was judged or cancelled, or it is malformed):
      // keeping it would resend it forever.
      await this.#opts.outbox.ack(r.shard);
      this.stats.refused++;
      this.#emit({
        type: 'result',
        shard: r.shard,
        outcome: 'refused',
        ms: r.ms,
        backend: r.backend,
        reason: e.message,
        code: e.code,
      });
      return;
    }
    await this.#opts.outbox.ack(r.shard);
    this.stats[reply.outcome]++;
    this.#emit({ type: 'result', shard: r.shard, outcome: reply.outcome, ms: r.ms, backend: r.backend });
  }

  /**
   * Runs again the long leases this device was computing when it last stopped (a reload), each
   * from its checkpoint, and sends their results late. One whose result already waits in the
   * outbox, or whose note cannot be read, is forgotten.
   */
  async #resumeUnfinished(session: HubSession): Promise<void> {
    const store = this.#opts.unfinished;
    if (!store) return;
    const notes = await store.list().catch(() => []);
    if (notes.length === 0) return;
    const sent = new Set((await this.#opts.outbox.pending()).map((r) => r.shard));
    for (const u of notes) {
      if (this.#stopping || this.#paused) return;
      let lease: LeaseMessage | undefined;
      try {
        lease = sent.has(u.shard) ? undefined : leaseOfNote(u.lease);
      } catch {
        lease = undefined;
      }
      if (!lease) {
        await store.forget(u.shard).catch(() => {});
        continue;
      }
      await this.#runLease(session, lease, true);
    }
  }

  async #work(session: HubSession): Promise<void> {
    const idleMs = this.#opts.idleMs ?? 500;
    this.#idle = 0;
    // The hub pushes `work-available` when work arrives after it said `no-work`: ask at once
    // rather than at the end of the idle back-off.
    const off = session.onPush((m) => {
      if (m.type !== 'work-available') return;
      this.#idle = 0;
      this.#wake?.();
    });
    try {
      await this.#workLoop(session, idleMs);
    } finally {
      off();
    }
  }

  async #workLoop(session: HubSession, idleMs: number): Promise<void> {
    while (!this.#stopping && session.isOpen) {
      if (this.#paused) {
        this.#set('paused');
        // Woken by resume(), stop() or a lost connection's close (checked on the next turn).
        await Promise.race([this.#sleep(PAUSE_CHECK_MS), session.closed]);
        continue;
      }
      // A cycle is the lease request, the blobs, the shard, the result and the rest: the rest
      // makes the whole cycle busy / cap long, so the time spent talking counts as rest too.
      const cycleStart = Date.now();
      let m: ReplyOf<'lease-request'> | undefined;
      try {
        m = await session.request({ type: 'lease-request' });
      } catch (e) {
        // The hub failed on it, or refused it for now: idle, and ask again.
        if (!isHubRefusal(e) || !(e.code === 'control/internal' || FINAL_REFUSALS.has(e.code))) throw e;
      }
      if (m?.type === 'lease') {
        this.#idle = 0;
        const busy = await this.#runLease(session, m);
        // A changed cap wakes the rest (setDutyCycle): its end is recomputed at the new cap.
        while (!this.#stopping && !this.#paused) {
          const left = cycleStart + busy + restAfter(busy, this.#duty) - Date.now();
          if (left <= 0) break;
          this.#set('resting');
          await this.#sleep(left);
        }
        continue;
      }
      // Shards this volunteer answered earlier may have been judged since (by later replicas):
      // the hub's count replaces the one the acks left.
      if (m?.type === 'no-work' && m.pending !== undefined && m.pending !== this.stats.pending) {
        this.stats.pending = m.pending;
        this.#emit({ type: 'pending', pending: m.pending });
      }
      this.#set('connected');
      await this.#sleep(idleMs * 2 ** Math.min(this.#idle++, 3));
    }
  }

  /**
   * Runs one lease to its result (or failure); returns the time the runner took, ms. `resumed`: a
   * lease noted before a reload, which the hub no longer holds for this volunteer — no heartbeats,
   * and a failure is not reported (there is no lease to free).
   */
  async #runLease(session: HubSession, lease: LeaseMessage, resumed = false): Promise<number> {
    if (resumed) this.stats.resumed++;
    else this.stats.leases++;
    this.#set('working');
    this.#emit({
      type: 'lease',
      shard: lease.shard,
      job: lease.job,
      kind: lease.work.kind,
      ...(lease.credit === undefined ? {} : { credit: parseCreditWire(lease.credit, 'lease.credit') }),
      ...(resumed ? { resumed: true as const } : {}),
    });
    const note = this.#opts.unfinished && resumable(lease) ? this.#opts.unfinished : undefined;
    // Noted before it runs; a failure to note costs only the resume.
    if (note && !resumed) await note.remember(lease.shard, noteOf(lease), this.hubUrl).catch(() => {});
    const forget = () => note?.forget(lease.shard).catch(() => {});
    let deadline = lease.deadline;
    let lost = false;
    // Heartbeats run beside the shard, a third of the way to each deadline, so one late beat
    // still leaves time for the next.
    let beat: ReturnType<typeof setTimeout> | undefined;
    const schedule = () => {
      if (resumed) return;
      const wait = Math.max(200, (deadline - Date.now()) / 3);
      beat = setTimeout(async () => {
        try {
          const r = await session.request({ type: 'heartbeat', lease: lease.lease });
          deadline = r.deadline;
          schedule();
        } catch (e) {
          // A lost connection: the outer loop notices and reconnects.
          if (!isHubRefusal(e)) return;
          // The hub no longer holds this lease for us: stop computing it.
          lost = true;
          try {
            await this.#opts.runner.cancel(lease.shard);
          } catch {
            // Cancelling is best effort: the result, if any, is refused by the hub anyway.
          }
        }
      }, wait);
    };
    schedule();
    const t0 = Date.now();
    this.#current = lease.shard;
    let result: ShardResult;
    let runStart = 0;
    try {
      const before = this.#fetcher.downloadedBytes;
      const beforePeers = this.#fetcher.peerBytes;
      const work = parseShardWork(lease.work, 'lease.work');
      const first = this.stats.fetchStartedAt === 0;
      if (first) this.stats.fetchStartedAt = Date.now();
      // The worker reads ONNX models from the shared blob store itself; fetch it there first.
      if (work.kind === 'onnx') await this.#fetcher.get(work.model);
      const shard = await shardFromLease(lease, this.#fetcher);
      if (first) this.stats.fetchDoneAt = Date.now();
      this.stats.downloadedBytes += this.#fetcher.downloadedBytes - before;
      this.stats.peerBytes += this.#fetcher.peerBytes - beforePeers;
      this.stats.peerFallbacks = this.#fetcher.peerFallbacks;
      this.stats.peerStalls = this.#fetcher.peerStalls;
      this.stats.peerWaitsExpired = this.#fetcher.peerWaitsExpired;
      this.stats.lastPeerFallback = this.#fetcher.lastPeerError?.message.slice(0, 500) ?? '';
      // Paused while the blobs came: the shard goes back unrun.
      if (this.#paused)
        throw new HearthError('shard/cancelled', `Shard ${lease.shard}: paused before it ran.`);
      runStart = Date.now();
      result = await this.#opts.runner.runShard(shard, (progress) => {
        if (progress.phase === 'checkpoint') this.stats.checkpoints++;
        if (progress.phase === 'resume') this.stats.resumedSteps += progress.done;
        this.#emit({ type: 'progress', progress });
      });
    } catch (e) {
      // An error the runner did not name is a fault of this volunteer's code or machine, not a
      // cancel and not the job's: the hub gives the shard to someone else.
      const error = isHearthError(e)
        ? e
        : new HearthError('shard/failed', `Shard ${lease.shard}: ${(e as Error)?.message ?? String(e)}`, {
            cause: e,
          });
      const busy = runStart ? Date.now() - runStart : 0;
      // Stopping (a Stop, a closed tab): the note stays for the next start to resume.
      if (this.#stopping) return busy;
      await forget();
      if (lost) return busy;
      if (this.#paused && isHearthError(e, 'shard/cancelled')) {
        // Paused mid-shard: hand it back now rather than at its deadline.
        clearTimeout(beat);
        this.#current = undefined;
        await session
          .request({
            type: 'shard-failed',
            shard: lease.shard,
            code: 'shard/cancelled',
            message: 'The volunteer paused.',
          })
          .catch(() => {});
        return busy;
      }
      this.stats.failed++;
      clearTimeout(beat);
      this.#current = undefined;
      if (resumed) {
        this.#emit({ type: 'shard-failed', shard: lease.shard, error });
        return busy;
      }
      // Tell the hub at once: a deterministic error reaches the researcher, any other frees the
      // shard now rather than at its deadline. A lost connection leaves it to the deadline.
      let reported: 'released' | 'recorded' | 'failed' | undefined;
      try {
        const reply = await session.request({
          type: 'shard-failed',
          shard: lease.shard,
          code: error.code,
          message: error.message.slice(0, CONTROL_LIMITS.maxErrorChars),
        });
        reported = reply.outcome;
      } catch {
        // The connection is gone; the outer loop notices and reconnects.
      }
      this.#emit({ type: 'shard-failed', shard: lease.shard, error, ...(reported ? { reported } : {}) });
      return busy;
    } finally {
      clearTimeout(beat);
      this.#current = undefined;
      this.stats.computeMs += Date.now() - t0;
    }
    // Durable before it leaves: if the connection drops now, the next one sends it.
    await this.#opts.outbox.add(result);
    await forget();
    if (this.#stopping) return result.ms;
    await this.#send(session, result);
    return result.ms;
  }
}

/** How often a paused volunteer looks again without being woken (a safety net; resume() wakes it). */
const PAUSE_CHECK_MS = 5000;
