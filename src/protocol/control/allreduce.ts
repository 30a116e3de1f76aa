// All-reduce messages: accountability and the hub as fallback for the ring (net/allreduce.ts).
// allreduce-report → allreduce-ack; allreduce-fallback → allreduce-ticket.
import { MAX_ROUND_ID_BYTES } from '../allreduce.ts';
import {
  array,
  fail,
  type Infer,
  integer,
  literal,
  object,
  refine,
  type Schema,
  sha256,
  string,
} from '../schema.ts';
import { base64url, CONTROL_LIMITS, peerId, time } from './wire.ts';

/** An all-reduce round id: 1 to 128 UTF-8 bytes, no control characters (it names URLs and rows). */
export function parseRoundId(v: unknown, path: string): string {
  const round = string({ max: CONTROL_LIMITS.maxRoundChars })(v, path);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(round)) throw fail(path, 'control characters are not allowed.');
  if (new TextEncoder().encode(round).byteLength > MAX_ROUND_ID_BYTES) {
    throw fail(path, `at most ${MAX_ROUND_ID_BYTES} UTF-8 bytes.`);
  }
  return round;
}

/** Distinct hub-issued peer ids, at least `min` of them. */
const peers = (min: number) =>
  array(peerId, CONTROL_LIMITS.maxAllReduceGroup, { min, distinct: 'a peer id appears twice.' });

const contribution = object({
  /** The member's PeerJS id (issued by the hub with `welcome`). */
  peer: peerId,
  /** The volunteer id it gave on the ring. */
  volunteer: (v, path) => {
    try {
      return sha256(v, path);
    } catch {
      throw fail(path, 'expected a volunteer id (64 lowercase hex digits).');
    }
  },
  /** SHA-256 of the tensor it contributed. */
  sha256,
  /** Its signature of contributionMessage(round, sha256) (protocol/allreduce.ts), base64url. */
  signature: base64url(CONTROL_LIMITS.maxSignatureChars),
});
/** One member's contribution to an all-reduce round, as a member reports it. */
export type ReportedContribution = Infer<typeof contribution>;

/**
 * "This round finished, with these signed contributions": the hub checks each signature against
 * the key of the volunteer its peer id was issued to, stores the report and answers
 * `allreduce-ack`. Sent by any member that finished the round over the ring.
 * `group`: peer ids in the round's order, the sender's own included. `contributors`: members
 * whose tensors are in the mean, in group order; `contributions` one per contributor, in the same
 * order. `mean`: SHA-256 of the mean's f32 bytes. `dropped`: members left out.
 */
const report = refine(
  object({
    round: parseRoundId,
    group: peers(2),
    contributors: peers(1),
    contributions: array(contribution, CONTROL_LIMITS.maxAllReduceGroup),
    mean: sha256,
    dropped: peers(0),
  }),
  (m, path) => {
    const members = new Set(m.group);
    for (const [name, list] of [
      ['contributors', m.contributors],
      ['dropped', m.dropped],
    ] as const) {
      list.forEach((p, i) => {
        if (!members.has(p)) throw fail(`${path}.${name}[${i}]`, `not a member of ${path}.group.`);
      });
    }
    if (m.contributions.length !== m.contributors.length) {
      throw fail(
        `${path}.contributions`,
        `expected one per contributor (${m.contributors.length}), got ${m.contributions.length}.`,
      );
    }
    m.contributions.forEach((c, i) => {
      if (c.peer !== m.contributors[i]) {
        throw fail(`${path}.contributions[${i}].peer`, `expected ${m.contributors[i]} (contributors[${i}]).`);
      }
    });
  },
);

/** The hub's judgement of one reported contribution. */
export type ContributionVerdict =
  /** Signed by the key of the volunteer the peer id was issued to. */
  | 'valid'
  /** The signature does not verify with that volunteer's key. */
  | 'bad-signature'
  /** The peer id was issued to another volunteer than the one named. */
  | 'wrong-volunteer'
  /** The hub never issued this peer id, or has forgotten it. */
  | 'unknown-peer';
export const CONTRIBUTION_VERDICTS: readonly ContributionVerdict[] = [
  'valid',
  'bad-signature',
  'wrong-volunteer',
  'unknown-peer',
];

const TICKET = /^[0-9a-f]{64}$/;

/** Requests a client sends in this concern, by type. */
export const ALLREDUCE_REQUESTS = {
  'allreduce-report': report as Schema<Infer<typeof report>>,
  /**
   * "The ring failed; let me average through the hub": the hub answers `allreduce-ticket`, a
   * one-time secret for `PUT /v1/allreduce/:round/contributions` and `GET
   * /v1/allreduce/:round/mean`. Every member that falls back sends the same group and element
   * count; `sha256` of the tensor's bytes is checked when they arrive.
   */
  'allreduce-fallback': object({
    round: parseRoundId,
    group: peers(1),
    elements: integer(1, CONTROL_LIMITS.maxAllReduceElements),
    sha256,
  }),
};

/** What the hub sends in this concern, by type. */
export const ALLREDUCE_HUB = {
  /** `flagged`: contributions that are not 'valid', with the hub's verdict (empty when all verified). */
  'allreduce-ack': object({
    round: parseRoundId,
    flagged: array(
      object({ peer: peerId, verdict: literal(CONTRIBUTION_VERDICTS) }),
      CONTROL_LIMITS.maxAllReduceGroup,
    ),
  }),
  /**
   * `ticket`: 64 hex digits, `Authorization: Bearer <ticket>` on the round's upload and mean
   * routes. `deadline`: ms since the epoch; the hub averages what it has by then.
   */
  'allreduce-ticket': object({ round: parseRoundId, ticket: string({ pattern: TICKET }), deadline: time }),
};

/** Which hub messages answer each request. */
export const ALLREDUCE_REPLIES = {
  'allreduce-report': ['allreduce-ack'],
  'allreduce-fallback': ['allreduce-ticket'],
} as const;
