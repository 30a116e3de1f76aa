import type { IncomingMessage } from 'node:http';
import type { BlobDir } from '../hub/blobs.ts';
import type { SubmitEnv } from '../hub/kinds/kind.ts';
import type { OracleRunner } from '../hub/oracle.ts';
import type { HubRounds } from '../hub/rounds.ts';
import type { Scheduler } from '../hub/scheduler.ts';
import type { ServiceLevels } from '../hub/service-levels.ts';
import type { HubStore } from '../hub/store.ts';
import type { HubWallets } from '../hub/wallets.ts';
import { httpError, readBody } from './http.ts';
import type { PerMinute } from './hub-wallets.ts';
import type { JobEvents } from './job-events.ts';
import type { ClaimRelayer } from './relayer.ts';

export interface Ctx {
  /** Rounds averaged through the hub (undefined without peers). */
  readonly rounds: HubRounds | undefined;
  readonly store: HubStore;
  readonly scheduler: Scheduler;
  readonly blobs: BlobDir;
  readonly maxJson: number;
  readonly allowed: ReadonlySet<string>;
  /** The hub's own page origins (see Hub.selfOrigins). */
  readonly self: ReadonlySet<string>;
  readonly adminToken: string | undefined;
  /** The hub's own device for `autoHoneypots` (made on first use). */
  readonly oracle: () => Promise<OracleRunner>;
  /** Builds a WGSL kernel's pipelines on the hub's device at submit (absent: declarations only). */
  readonly checkWgsl?: SubmitEnv['checkWgsl'];
  readonly stats: HubStats;
  /** Tells volunteers idle on `no-work` that there is work (after a submit). */
  readonly workAvailable: () => void;
  /** Live progress streams (`GET /v1/jobs/:id/events`). */
  readonly events: JobEvents;
  /** Service levels over the last hour, fed by the scheduler's events (`GET /v1/stats`). */
  readonly levels: ServiceLevels;
  /** Volunteers connected (authenticated) now. */
  readonly volunteersConnected: () => number;
  /** Wallet bindings and vouchers (a hub started with a credit contract). */
  readonly wallets?: HubWallets;
  /** Relays claims from the operator's funded key (a hub started with a relayer key). */
  readonly relayer?: ClaimRelayer;
  /** Per-minute limits of the wallet routes. */
  readonly limits: { readonly vouchers: PerMinute; readonly claims: PerMinute };
}

/** Counters of one hub process since it started. */
export interface HubStats {
  /** Bytes sent by `GET /v1/blobs/:sha256` (volunteers' fallback route for models and inputs). */
  blobBytesServed: number;
  /** Requests answered 500: a fault of the hub's own (each also logged). */
  internalErrors: number;
  /** Expiry sweeps that failed (each distinct failure also logged). */
  sweepFailures: number;
}

/** One structured log line (what `HubOptions.log` receives): never tokens, bodies or headers. */
export interface HubLogEntry {
  readonly level: 'error';
  /** Where: 'http' or 'expiry'. */
  readonly at: string;
  readonly error: string;
  readonly [k: string]: unknown;
}

/** Reads a JSON body of at most ctx.maxJson bytes, stopping as soon as it is over. */
export async function readJson(ctx: Ctx, req: IncomingMessage): Promise<unknown> {
  const buf = await readBody(req, ctx.maxJson);
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    throw httpError('input/invalid', 'body: malformed JSON.', { details: { path: 'body' } });
  }
}
