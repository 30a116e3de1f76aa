// The hub's HTTP API, version 1 (every path under /v1/): the answers' types and their parsers,
// defined once (schema.ts) and shared by the hub (which writes them), the typed client
// (client/hub-api.ts, which the `hearth` CLI uses) and pages. An answer is checked where it is
// read, never cast: a hub of another version, or a proxy's page, is a clear error, not a crash.
// Answers may grow fields in a later version; a client ignores what it does not know.
import { parseCreditReport } from './credit.ts';
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
  {},
  loose,
);
export type ResultsIndex = Infer<typeof resultsIndex>;

/** `GET /v1/volunteers/:id/credits` (protocol/credit.ts: amounts in base units, exact). */
export const creditReport: Schema<ReturnType<typeof parseCreditReport>> = (v) => parseCreditReport(v);

/** The body of every refusal: `{ error: { code, message, details? } }`. */
export const errorBody = object(
  { error: object({ code: string({ max: 64 }), message: string() }, { details: record }, loose) },
  {},
  loose,
);
