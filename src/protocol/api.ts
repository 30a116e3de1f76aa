// The hub's HTTP API, version 1 (every path under /v1/): the answers' types and their parsers,
// defined once (schema.ts) and shared by the hub (which writes them), the typed client
// (client/hub-api.ts, which the `hearth` CLI uses) and pages. An answer is checked where it is
// read, never cast: a hub of another version, or a proxy's page, is a clear error, not a crash.
// Answers may grow fields in a later version; a client ignores what it does not know.
import { parseCreditReport, parseCreditWire } from './credit.ts';
import {
  array,
  boolean,
  type Infer,
  integer,
  literal,
  nonNegative,
  object,
  record,
  type Schema,
  sha256,
  string,
} from './schema.ts';
import { DTYPES } from './shard.ts';

export const API_VERSION = 1;
/** Every route of this version starts with it. */
export const API_PREFIX = `/v${API_VERSION}`;

const count = integer(0, Number.MAX_SAFE_INTEGER);
const loose = { unknown: 'ignore' } as const;

export const JOB_STATUSES = ['running', 'done', 'failed', 'cancelled'] as const;

/** `POST /v1/jobs` → 201. */
export const submitted = object({ job: string({ max: 256 }) }, {}, loose);
export type Submitted = Infer<typeof submitted>;

/** `GET /v1/jobs/:id` (and each `progress` event of `GET /v1/jobs/:id/events`). */
export const jobProgress = object(
  {
    job: string({ max: 256 }),
    status: literal(JOB_STATUSES),
    shards: count,
    validated: count,
    failed: count,
    /** Shards with a live lease right now. */
    inFlight: count,
    /** Shards with at least one result still waiting for agreement. */
    done: count,
    /** validated / shards, in [0, 1]. */
    progress: nonNegative,
  },
  {
    /** Why the job failed, when one error explains it (a kernel that does not compile). */
    error: object({ code: string({ max: 64 }), message: string() }, { details: record }, loose),
    /** Failed shards with the reason, the first few. */
    failures: array(
      object({ shard: string(), index: count, message: string() }, { code: string({ max: 64 }) }, loose),
      1024,
    ),
    /** What the job is waiting for, when not compute in flight. */
    waiting: string(),
  },
  loose,
);
export type JobProgressAnswer = Infer<typeof jobProgress>;

/** `DELETE /v1/jobs/:id`. */
export const cancelled = object(
  { job: string({ max: 256 }), already: boolean, leasesDropped: count, creditVoided: count },
  {},
  loose,
);
export type Cancelled = Infer<typeof cancelled>;

/** `GET /v1/jobs/:id/results`: every validated shard's outputs (bytes at `.../:index/:name`). */
export const resultsIndex = object(
  {
    job: string({ max: 256 }),
    status: literal(JOB_STATUSES),
    shards: array(
      object(
        {
          shard: string(),
          index: count,
          outputs: array(
            object(
              {
                name: string({ max: 128 }),
                dtype: literal(DTYPES),
                shape: array(count, 8),
                sha256,
                bytes: count,
              },
              {},
              loose,
            ),
            64,
          ),
        },
        /** Agreeing results the canonical one rests on (1: a single replica). */
        { replicas: count },
        loose,
      ),
      10_000_000,
    ),
  },
  /** The job's kind (a `train` job's model is read with `GET /v1/jobs/:id/train`). */
  { kind: string({ max: 32 }) },
  loose,
);
export type ResultsIndex = Infer<typeof resultsIndex>;

/** `GET /v1/jobs`: the caller's jobs (the admin's: every job), newest first, at most `JOB_LIST_LIMIT`. */
export const JOB_LIST_LIMIT = 200;
export const jobList = object(
  {
    jobs: array(
      object(
        {
          job: string({ max: 256 }),
          status: literal(JOB_STATUSES),
          kind: string({ max: 64 }),
          /** Submit time (ms since the epoch, the hub's clock). */
          createdAt: count,
          shards: count,
          validated: count,
          failed: count,
          inFlight: count,
          done: count,
        },
        /** The token name that submitted it (absent for the admin's jobs). */
        { owner: string({ max: 256 }) },
        loose,
      ),
      JOB_LIST_LIMIT,
    ),
    /** How many jobs the caller has in all (more than `jobs` lists when over the limit). */
    total: count,
  },
  {},
  loose,
);
export type JobList = Infer<typeof jobList>;

/** Shard latency (lease issued → result accepted) over the window: nearest-rank percentiles. */
const latency = object({ samples: count }, { p50Ms: nonNegative, p95Ms: nonNegative }, loose);

/** Validated shards per bucket, oldest first, from `start` (ms). */
const throughput = object(
  { bucketMs: integer(1, Number.MAX_SAFE_INTEGER), start: count, validated: array(count, 100_000) },
  {},
  loose,
);
export type ThroughputAnswer = Infer<typeof throughput>;

/** `GET /v1/stats` (any token): the hub's service levels, and the caller's running jobs' ETAs. */
export const hubStats = object(
  {
    /** The hub's clock when it answered (ms). */
    at: count,
    /** How far back the figures look (ms; an hour). */
    windowMs: count,
    /** Volunteers connected (authenticated) now. */
    volunteers: count,
    latency,
    validatedPerMinute: nonNegative,
    /** Leases that ended in the window, how many with a valid result, and the fraction. */
    leases: object({ ended: count, valid: count }, { validFraction: nonNegative }, loose),
    throughput,
    /**
     * The caller's jobs (the admin's: every job) that are running or were active in the window,
     * most recently active first, at most `JOB_LIST_LIMIT`.
     */
    jobs: array(
      object(
        {
          job: string({ max: 256 }),
          status: literal(JOB_STATUSES),
          /** Shards neither validated nor failed. */
          remaining: count,
          validatedPerMinute: nonNegative,
          latency,
        },
        /** ms to validate `remaining` at the recent rate; absent without a recent rate. */
        { etaMs: nonNegative, throughput },
        loose,
      ),
      JOB_LIST_LIMIT,
    ),
  },
  {},
  loose,
);
export type HubStatsAnswer = Infer<typeof hubStats>;

/** `GET /v1/volunteers/:id/credits` (protocol/credit.ts: amounts in base units, exact). */
export const creditReport: Schema<ReturnType<typeof parseCreditReport>> = (v) => parseCreditReport(v);

/** Base units as a decimal string, read as a bigint: money never rides a JSON number. */
const units: Schema<bigint> = (v, path) => parseCreditWire(v, path);
const address = string({ max: 42, pattern: /^0x[0-9a-fA-F]{40}$/ });

/** `GET /v1/wallet`: how this hub pays credit as tokens. */
export const walletRules = object(
  {
    chainId: integer(1, Number.MAX_SAFE_INTEGER),
    contract: address,
    /** The embedding site's share of credit earned through its widget (basis points). */
    embedShareBps: integer(0, 10_000),
    unitsPerCredit: string({ max: 20 }),
    /** Whether the hub submits claims itself (the volunteer needs no ETH). */
    relayer: boolean,
  },
  {},
  loose,
);
export type WalletRules = Infer<typeof walletRules>;

/** `GET /v1/wallet/:address`: what an address has earned (granted), as volunteer and as site. */
export const walletEarned = object(
  { address, earned: units, asVolunteer: units, asSite: units, pending: units },
  /** What the contract has minted to it (when the hub reads the chain). */
  { claimed: units },
  loose,
);
export type WalletEarned = Infer<typeof walletEarned>;

/** `GET /v1/wallet/:address/voucher`: the latest cumulative voucher, signed by the hub's key. */
export const voucherAnswer = object(
  {
    account: address,
    amount: units,
    expiry: units,
    chainId: integer(1, Number.MAX_SAFE_INTEGER),
    contract: address,
    signature: string({ max: 132, pattern: /^0x[0-9a-fA-F]{130}$/ }),
  },
  {},
  loose,
);
export type VoucherAnswer = Infer<typeof voucherAnswer>;

/** `POST /v1/wallet/:address/claim`: the relayed claim's transaction and what it minted. */
export const relayedClaim = object(
  {
    account: address,
    amount: units,
    minted: units,
    transaction: string({ max: 66, pattern: /^0x[0-9a-f]{64}$/ }),
  },
  {},
  loose,
);
export type RelayedClaim = Infer<typeof relayedClaim>;

/** `GET /v1/budget`: a researcher token's credit budget and what its jobs hold of it. */
export const budgetAnswer = object(
  { unlimited: boolean, used: units },
  { name: string({ max: 64 }), budget: units, left: units },
  loose,
);
export type BudgetAnswer = Infer<typeof budgetAnswer>;

/** The body of every refusal: `{ error: { code, message, details? } }`. */
export const errorBody = object(
  { error: object({ code: string({ max: 64 }), message: string() }, { details: record }, loose) },
  {},
  loose,
);

/** `GET /v1/jobs/:id/train`: a train job's rounds — the loss curve — and its trained θ (hub/train-view.ts). */
export const trainProgress = object(
  {
    job: string({ max: 256 }),
    status: literal(JOB_STATUSES),
    /** The model configuration (protocol/train-model.ts parseModelConfig reads it). */
    model: record,
    params: count,
    rounds: count,
    groupSize: count,
    codec: string({ max: 16 }),
    curve: array(
      object(
        { round: count, theta: sha256, slots: count, accepted: count, failed: count, tokens: count },
        { trainLoss: nonNegative, valLoss: nonNegative },
        loose,
      ),
      100_000,
    ),
    flops: nonNegative,
  },
  { final: object({ theta: sha256, valLoss: nonNegative }, {}, loose) },
  loose,
);
export type TrainProgress = Infer<typeof trainProgress>;
