// The control plane between a volunteer and the hub: small JSON text messages over one WebSocket.
// Everything a volunteer sends is untrusted (DESIGN.md invariants 3 and 7), so both directions
// are checked at runtime; a failure is a HearthError ('input/invalid') whose message names the
// bad field.
//
// Each message is defined once, in the file of its concern (control/session.ts, leases.ts,
// swarm.ts, allreduce.ts), as a schema (schema.ts) from which both its type and its parser
// come. This file joins them into the protocol:
//   - a request (volunteer → hub) is `{ v: 2, type, id, ...fields }`; every request gets exactly
//     one reply, which names it: `{ v: 2, type, re: id, ... }`, one of REPLIES[type] or `error`;
//   - a hub message without `re` is the hub's own: a push (`work-available`), or an error about
//     the connection as a whole (rate limit, auth timeout, replaced);
//   - an error carries a HearthError code (core/errors.ts), a sentence and details — never only
//     a sentence.
// A new concern (training rounds, wallet vouchers) is a new file with its REQUESTS, HUB and
// REPLIES tables, spread in below.
import { HearthError } from '../core/errors.ts';
import { ALLREDUCE_HUB, ALLREDUCE_REPLIES, ALLREDUCE_REQUESTS } from './control/allreduce.ts';
import { CREDIT_HUB, CREDIT_REPLIES, CREDIT_REQUESTS } from './control/credit.ts';
import { LEASE_HUB, LEASE_REPLIES, LEASE_REQUESTS, type WireResult } from './control/leases.ts';
import { SESSION_HUB, SESSION_REPLIES, SESSION_REQUESTS } from './control/session.ts';
import { SWARM_HUB, SWARM_REPLIES, SWARM_REQUESTS } from './control/swarm.ts';
import { WALLET_HUB, WALLET_REPLIES, WALLET_REQUESTS } from './control/wallet.ts';
import { CONTROL_LIMITS, CONTROL_PROTOCOL_VERSION, requestId } from './control/wire.ts';
import { type Infer, object, record, type Schema, string } from './schema.ts';
import { describe, obj, oneOf } from './validate.ts';

export {
  CONTRIBUTION_VERDICTS,
  type ContributionVerdict,
  parseRoundId,
  type ReportedContribution,
} from './control/allreduce.ts';
export {
  ACK_OUTCOMES,
  type AckOutcome,
  type BatchAck,
  encodeResult,
  FINAL_REFUSALS,
  type LeaseKernel,
  type LeaseWork,
  type WireOutput,
  type WireResult,
} from './control/leases.ts';
export {
  type ControlCapabilities,
  challengeBytes,
  type PublicJwk,
  volunteerIdOf,
} from './control/session.ts';
export {
  CONTROL_LIMITS,
  CONTROL_PROTOCOL_VERSION,
  fromBase64Url,
  PEER_ID,
  toBase64Url,
} from './control/wire.ts';

/** Every request, by type. */
export const REQUESTS = {
  ...SESSION_REQUESTS,
  ...LEASE_REQUESTS,
  ...CREDIT_REQUESTS,
  ...SWARM_REQUESTS,
  ...ALLREDUCE_REQUESTS,
  ...WALLET_REQUESTS,
};

const error = object(
  {
    /** A HearthError code (`lease/unknown`, `control/rate-limited`, …): what a program acts on. */
    code: string({ max: 64, pattern: /^[a-z0-9-]+\/[a-z0-9-]+$/ }),
    /** What was wrong and what to do, for a person. */
    message: string({ max: CONTROL_LIMITS.maxErrorChars }),
  },
  {
    /** The error's details (the field at fault, the limit, …), as JSON. */
    details: record,
  },
);

/** Every hub message, by type. */
export const HUB_MESSAGES = {
  ...SESSION_HUB,
  ...LEASE_HUB,
  ...CREDIT_HUB,
  ...SWARM_HUB,
  ...ALLREDUCE_HUB,
  ...WALLET_HUB,
  error,
};

/** Which hub messages answer each request (besides `error`, which may answer any). */
export const REPLIES = {
  ...SESSION_REPLIES,
  ...LEASE_REPLIES,
  ...CREDIT_REPLIES,
  ...SWARM_REPLIES,
  ...ALLREDUCE_REPLIES,
  ...WALLET_REPLIES,
} satisfies { readonly [K in RequestType]: readonly HubType[] };

export type RequestType = keyof typeof REQUESTS;
export type HubType = keyof typeof HUB_MESSAGES;
type Bodies<T extends Readonly<Record<string, Schema<unknown>>>> = { [K in keyof T]: Infer<T[K]> };
type RequestBodies = Bodies<typeof REQUESTS>;
type HubBodies = Bodies<typeof HUB_MESSAGES>;

/** A request as the hub receives it. */
export type RequestOf<K extends RequestType> = {
  readonly v: typeof CONTROL_PROTOCOL_VERSION;
  readonly type: K;
  readonly id: number;
} & RequestBodies[K];
export type ClientMessage = { [K in RequestType]: RequestOf<K> }[RequestType];

/** A request as a client writes it: the session adds `v` and `id`; a result's bytes are base64url. */
export type RequestBody<K extends RequestType> = { readonly type: K } & (K extends 'result'
  ? { readonly result: WireResult }
  : K extends 'results'
    ? { readonly results: readonly WireResult[] }
    : RequestBodies[K]);
export type AnyRequestBody = { [K in RequestType]: RequestBody<K> }[RequestType];

/** A hub message as the volunteer receives it. */
export type HubMessageOf<K extends HubType> = {
  readonly v: typeof CONTROL_PROTOCOL_VERSION;
  readonly type: K;
  /** The request this answers; absent on a push. */
  readonly re?: number;
} & HubBodies[K];
export type HubMessage = { [K in HubType]: HubMessageOf<K> }[HubType];
/** A hub message as the hub writes it (it adds `v` and `re`). */
export type HubBody<K extends HubType> = { readonly type: K } & HubBodies[K];
export type AnyHubBody = { [K in HubType]: HubBody<K> }[HubType];

/** The reply types of request `K`. */
export type ReplyType<K extends RequestType> = (typeof REPLIES)[K][number];
/** The reply to request `K` (an `error` reply is thrown by the session, not returned). */
export type ReplyOf<K extends RequestType> = { [T in ReplyType<K>]: HubMessageOf<T> }[ReplyType<K>];
/** A reply to request `K` as the hub writes it. */
export type ReplyBody<K extends RequestType> = { [T in ReplyType<K>]: HubBody<T> }[ReplyType<K>];

export type LeaseMessage = HubMessageOf<'lease'>;
export type ErrorMessage = HubMessageOf<'error'>;
export type AllReduceAckMessage = HubMessageOf<'allreduce-ack'>;

const REQUEST_TYPES = Object.keys(REQUESTS) as RequestType[];
const HUB_TYPES = Object.keys(HUB_MESSAGES) as HubType[];

/**
 * The message's JSON object, its version checked. A number other than this version is a
 * 'protocol/version' error (a page from another release: it must reload); anything else wrong is
 * 'input/invalid'.
 */
function envelope(text: unknown, who: string): Record<string, unknown> {
  if (typeof text !== 'string') {
    throw new HearthError('input/invalid', `${who}: expected a JSON text message, got ${typeof text}.`, {
      details: { path: who },
    });
  }
  if (text.length > CONTROL_LIMITS.maxMessageChars) {
    throw new HearthError(
      'input/invalid',
      `${who}: ${text.length} characters is over the ${CONTROL_LIMITS.maxMessageChars} limit.`,
      { details: { path: who } },
    );
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new HearthError('input/invalid', `${who}: not valid JSON (${(e as Error).message}).`, {
      details: { path: who },
    });
  }
  const o = obj(v, who);
  if (o.v !== CONTROL_PROTOCOL_VERSION) {
    const said = o.v === undefined ? 'nothing' : describe(o.v);
    throw new HearthError(
      typeof o.v === 'number' ? 'protocol/version' : 'input/invalid',
      `${who}.v: this side speaks control protocol ${CONTROL_PROTOCOL_VERSION}, the message says ${said}. Reload the page (or upgrade the client) to get the hub's version.`,
      // `got` as a word, never the value: it may be any JSON the sender chose (deeply nested).
      {
        details: {
          path: `${who}.v`,
          expected: CONTROL_PROTOCOL_VERSION,
          got: typeof o.v === 'number' ? o.v : said,
        },
      },
    );
  }
  return o;
}

/**
 * The request id in a message that may not parse, so that even an error about a bad message can
 * name the request it answers. Undefined when there is none to name.
 */
export function requestIdOf(text: string): number | undefined {
  try {
    const o = JSON.parse(text) as { id?: unknown };
    return typeof o === 'object' && o !== null ? requestId(o.id, 'id') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Checks a message from a volunteer. Throws a HearthError ('input/invalid', or
 * 'protocol/version') naming the bad field.
 *
 * @example
 * const m = parseClientMessage(text);
 * if (m.type === 'hello') m.capabilities.maxBufferBytes;
 */
export function parseClientMessage(text: unknown): ClientMessage {
  const { v: _v, type: t, id: i, ...fields } = envelope(text, 'message');
  const type = oneOf(t, 'message.type', REQUEST_TYPES);
  const id = requestId(i, 'message.id');
  const body = (REQUESTS[type] as Schema<object>)(fields, 'message');
  return { v: CONTROL_PROTOCOL_VERSION, type, id, ...body } as ClientMessage;
}

/**
 * Checks a message from the hub (the volunteer trusts the hub to decide, not to be well formed).
 * A lease's `work` is checked for its kind only; the worker's parseShard checks the shard it
 * becomes.
 */
export function parseHubMessage(text: unknown): HubMessage {
  const { v: _v, type: t, re: r, ...fields } = envelope(text, 'message');
  const type = oneOf(t, 'message.type', HUB_TYPES);
  const body = (HUB_MESSAGES[type] as Schema<object>)(fields, 'message');
  const re = r === undefined ? undefined : requestId(r, 'message.re');
  return { v: CONTROL_PROTOCOL_VERSION, type, ...(re === undefined ? {} : { re }), ...body } as HubMessage;
}

/** Whether `m` may answer a request of type `request` (an error may answer any). */
export function answers(request: RequestType, m: HubMessage): boolean {
  return m.type === 'error' || (REPLIES[request] as readonly string[]).includes(m.type);
}
