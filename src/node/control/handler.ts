// What a control-plane handler is: a function from one request of an authenticated connection to
// its reply. Handlers live by concern beside this file (leases, swarm, allreduce) and are joined
// into one table keyed by message type (control-plane.ts), so a new message is a new row, and
// the type checker holds each row to the replies its request may get (protocol/control.ts
// REPLIES). A handler refuses by throwing a HearthError; control-plane.ts turns it into an
// `error` reply with the code, the sentence and the details.
import type { IssuedPeers } from '../../hub/allreduce-audit.ts';
import type { HubRounds } from '../../hub/rounds.ts';
import type { Scheduler } from '../../hub/scheduler.ts';
import type { AllReduceReportRecord } from '../../hub/store.ts';
import type { BlobSwarm } from '../../hub/swarm.ts';
import type { HubWallets } from '../../hub/wallets.ts';
import type { ControlCapabilities, ReplyBody, RequestOf, RequestType } from '../../protocol/control.ts';
import type { EmbedAttribution } from '../../protocol/embed.ts';
import type { Manifest } from '../../protocol/manifest.ts';

/** An authenticated connection, as its handlers see it. */
export interface Connection {
  /** The volunteer id (SHA-256 of its key). */
  readonly volunteer: string;
  readonly caps: ControlCapabilities;
  /** The PeerJS id the hub issued to this connection (when it runs a swarm). */
  readonly peerId?: string;
  /** Times of this connection's all-reduce reports in the last minute (for the rate limit). */
  readonly reported: number[];
  /** Whether the last lease-request was answered `no-work` (so `work-available` is pushed to it). */
  idle: boolean;
  /** The site that embedded this volunteer and its payout address (a widget's hello): credited with its results. */
  readonly embed?: EmbedAttribution;
  /**
   * The page's origin (its Origin header, which the hub allowed), or `http://` + Host for a client
   * that sends none: a Sign-In with Ethereum message's domain and URI.
   */
  readonly origin: string;
}

/** What the all-reduce handlers are given: where reports go, the hub's rounds, a report limit. */
export interface AllReduceHandling {
  /** Keeps each verified `allreduce-report`. */
  readonly record: (r: AllReduceReportRecord) => void;
  /** With it, volunteers may average through the hub (`allreduce-fallback`). */
  readonly rounds?: HubRounds;
  /** Reports one connection may send per minute (default 60): each is a write to the store. */
  readonly reportsPerMinute?: number;
}

/** What handlers share: the hub's parts, as the control plane was given them. */
export interface HandlerContext {
  readonly scheduler: Scheduler;
  readonly now: () => number;
  readonly manifestOf?: (job: string) => Manifest | undefined;
  readonly swarm?: BlobSwarm;
  readonly allreduce?: AllReduceHandling;
  readonly issued: IssuedPeers;
  /** A job's progress changed (every job's when undefined): live watchers are told. */
  readonly jobChanged?: (job?: string) => void;
  /** A volunteer's credit changed (and, when a shard was judged, its other answerers'). */
  readonly creditChanged?: (volunteer: string, judgedShard?: string) => void;
  /** Wallet bindings and vouchers (a hub with a credit contract). */
  readonly wallets?: HubWallets;
}

/** Requests an authenticated connection may send (hello and auth make it one). */
export type ReadyType = Exclude<RequestType, 'hello' | 'auth'>;

export type Handler<K extends RequestType> = (
  m: RequestOf<K>,
  c: Connection,
  ctx: HandlerContext,
) => ReplyBody<K> | Promise<ReplyBody<K>>;

/** A table of handlers for the request types `K`. */
export type Handlers<K extends RequestType> = { readonly [T in K]: Handler<T> };
