// The volunteer runtime's public types: its states, the events it emits, its counters and its
// options (volunteer.ts is the runtime itself).
import type { HearthError } from '../core/errors.ts';
import type { PeerNodeOptions } from '../net/peer-node.ts';
import type { ControlCapabilities } from '../protocol/control.ts';
import type { EmbedAttribution } from '../protocol/embed.ts';
import type { JobKind } from '../protocol/kinds/index.ts';
import type { ShardProgress } from '../protocol/shard.ts';
import type { BlobStore } from './blobs.ts';
import type { Signer, SocketFactory } from './hub-session.ts';
import type { ResultQueue, ShardRunner } from './runner.ts';
import type { UnfinishedStore } from './unfinished.ts';

/**
 * `resting`: between shards, holding to the GPU cap (`dutyCycle`); `paused`: connected, asking for
 * no work until `resume()` (the volunteer pressed pause, or the tab was hidden).
 */
export type VolunteerState =
  | 'idle'
  | 'connecting'
  | 'connected'
  | 'working'
  | 'resting'
  | 'paused'
  | 'waiting'
  | 'stopped';

export type VolunteerEvent =
  | { readonly type: 'state'; readonly state: VolunteerState }
  | { readonly type: 'connected'; readonly volunteerId: string }
  | { readonly type: 'disconnected'; readonly error: HearthError; readonly retryInMs: number }
  | {
      readonly type: 'lease';
      readonly shard: string;
      readonly job: string;
      readonly kind: JobKind;
      /** What the shard earns once validated (base units), as the hub said when leasing it. */
      readonly credit?: bigint;
      /** A lease from before a reload, run again from its checkpoint (no lease on the hub now). */
      readonly resumed?: true;
    }
  | { readonly type: 'progress'; readonly progress: ShardProgress }
  | {
      readonly type: 'result';
      readonly shard: string;
      readonly outcome: 'pending' | 'valid' | 'invalid' | 'inconclusive' | 'refused';
      readonly ms: number;
      readonly backend: string;
      /** Why the hub refused it (outcome 'refused'). */
      readonly reason?: string;
      /** The hub's error code (outcome 'refused'): `lease/unknown`, `job/closed`, … */
      readonly code?: string;
    }
  /**
   * A shard failed here. `reported` says what the hub did with the error: 'recorded' (it would
   * fail the same way anywhere: the researcher hears of it), 'failed' (the shard or job failed
   * with it), 'released' (taken as this device's trouble: someone else runs it).
   */
  | {
      readonly type: 'shard-failed';
      readonly shard: string;
      readonly error: HearthError;
      readonly reported?: 'released' | 'recorded' | 'failed';
    }
  /** The hub's count of this volunteer's results still awaiting agreement (on `no-work`). */
  | { readonly type: 'pending'; readonly pending: number }
  /**
   * This identity connected again elsewhere (another tab, another window) and the hub closed this
   * connection: the volunteer stops rather than reconnect and take the connection back.
   */
  | { readonly type: 'replaced'; readonly message: string }
  /** The hub's word on this volunteer's credit (pushed as it changes), in base units. */
  | {
      readonly type: 'credit';
      readonly granted: bigint;
      readonly pending: bigint;
      readonly pendingResults: number;
      /** The address this volunteer is bound to (Sign-In with Ethereum), when it is. */
      readonly address?: string;
    }
  /** This connection's peer joined the blob swarm, or could not (blobs then come from the hub). */
  | { readonly type: 'swarm'; readonly peerId: string; readonly error?: HearthError };

export interface VolunteerStats {
  leases: number;
  /** Results the hub acknowledged, by outcome. */
  pending: number;
  valid: number;
  invalid: number;
  inconclusive: number;
  /** Results the hub would not take (e.g. the lease was reissued while this one was offline). */
  refused: number;
  /** Shards that failed here (bad blob, compile error, device loss): left to expire on the hub. */
  failed: number;
  /** Bytes downloaded from the hub's blob route. */
  downloadedBytes: number;
  /** Bytes fetched from other volunteers (the swarm). */
  peerBytes: number;
  /** Wall time spent running shards, ms. */
  computeMs: number;
  /** Most peers that served pieces of one blob fetched from peers (0: none from peers yet). */
  peerHolders: number;
  /** Peer fetches that fell back to the hub (of them, `peerStalls` for lack of progress). */
  peerFallbacks: number;
  peerStalls: number;
  /** Waits for another volunteer's first copy that ran out, so the hub's route was used. */
  peerWaitsExpired: number;
  /** Why the last peer fetch fell back ('' while none did). */
  lastPeerFallback: string;
  /** When this volunteer began getting its first lease's blobs (epoch ms; 0: not yet). */
  fetchStartedAt: number;
  /** When its first lease's blobs were all here (epoch ms; 0: not yet). */
  fetchDoneAt: number;
  /** Training checkpoints saved, shards resumed after a reload, and the steps those skipped. */
  checkpoints: number;
  resumed: number;
  resumedSteps: number;
}

export interface VolunteerOptions {
  /** The hub's base URL, e.g. `http://127.0.0.1:8080`. */
  readonly hubUrl: string;
  /**
   * Other hubs of the same project (hubs that share one PostgreSQL database), tried in turn after
   * `hubUrl` when a connection cannot open or is lost: a hub that dies costs its volunteers one
   * reconnect, and results waiting in the outbox go to the next hub. The list is walked round and
   * round; the back-off grows only once every hub failed in a row.
   */
  readonly hubUrls?: readonly string[];
  readonly identity: Signer;
  readonly capabilities: ControlCapabilities;
  readonly runner: ShardRunner;
  readonly outbox: ResultQueue;
  /**
   * Long leases in progress, kept across reloads (store/unfinished.ts in a tab): a `train` lease
   * is noted before it runs, and after a reload it is run again — from its checkpoint — and its
   * result sent late, before any new work is asked for.
   */
  readonly unfinished?: UnfinishedStore;
  /** Where fetched blobs are kept; in a tab, the same IndexedDB cache the worker reads models from. */
  readonly blobs: BlobStore;
  readonly socket?: SocketFactory;
  readonly fetch?: typeof fetch;
  /**
   * Join the hub's blob swarm: with these PeerJS settings (the hub's host and port, `/p2p`,
   * iceServers), each connection opens a peer under the id the hub issued, serves the blob store
   * to other volunteers, fetches blobs from holders the hub names before using the hub's route,
   * and announces what it holds. Without it, blobs come from the hub only.
   */
  readonly p2p?: Omit<PeerNodeOptions, 'id' | 'source'>;
  /** Reconnect backoff: first delay and cap, ms (default 250 and 30,000), with ±50% jitter. */
  readonly backoff?: { readonly minMs?: number; readonly maxMs?: number };
  /** How long to wait after `no-work` before asking again, growing to 8× (default 500 ms). */
  readonly idleMs?: number;
  readonly replyTimeoutMs?: number;
  /** Uniform in [0, 1) for jitter; seeded in tests. */
  readonly random?: () => number;
  /**
   * The GPU cap: the share of wall time spent running shards, in [0.1, 1] (default 1 here; the
   * page's default is `DUTY_CYCLE.default`). A shard that ran `ms` makes its whole cycle (lease
   * request, blobs, shard, result, rest) last `ms / dutyCycle`: the volunteer rests for what is
   * left of that before asking for the next. `setDutyCycle` changes it live.
   */
  readonly dutyCycle?: number;
  /** Start paused (a remembered pause): connected, asking for no work until `resume()`. */
  readonly paused?: boolean;
  /**
   * A `<hearth-widget>`'s volunteer: the site that embedded it and the payout address it named,
   * sent in every hello; the hub records both with the ledger entries of this volunteer's results.
   */
  readonly embed?: EmbedAttribution;
  readonly onEvent?: (e: VolunteerEvent) => void;
}
