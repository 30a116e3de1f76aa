// The volunteer's side of accountable all-reduce (issue 5): signing its contribution with its
// volunteer key, reporting a finished round's signed contributions to the hub, and averaging
// through the hub when the ring cannot finish. net/allreduce.ts knows nothing of hubs or keys;
// this file hands it a signer and a fallback.
import { HearthError } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import type {
  AllReduceFallback,
  AllReduceFallbackResult,
  AllReduceIdentity,
  AllReduceResult,
  Contribution,
} from '../net/allreduce.ts';
import { isContributionMessage } from '../protocol/allreduce.ts';
import {
  type AllReduceAckMessage,
  fromBase64Url,
  PEER_ID,
  type ReplyOf,
  type RequestBody,
  toBase64Url,
} from '../protocol/control.ts';
import { arr, int, obj, str } from '../protocol/validate.ts';
import { type HubSession, isHubRefusal } from './hub-session.ts';

/**
 * An all-reduce identity that signs with the volunteer's key (the browser's VolunteerIdentity
 * `privateKey`). It signs contribution messages only: anything else — a hub challenge above all —
 * is refused, so a round can never be made to produce an auth signature.
 *
 * @example
 * const me = await loadOrCreateIdentity();
 * await allReduceMean(node, { round, group, tensor, identity: contributionSigner(me.id, me.privateKey) });
 */
export function contributionSigner(volunteer: string, privateKey: CryptoKey): AllReduceIdentity {
  return {
    volunteer,
    async sign(message: string) {
      if (!isContributionMessage(message)) {
        throw new HearthError(
          'input/invalid',
          'contributionSigner signs all-reduce contribution messages only.',
        );
      }
      const sig = await crypto.subtle.sign(
        { name: 'ECDSA', hash: 'SHA-256' },
        privateKey,
        new TextEncoder().encode(message),
      );
      return toBase64Url(sig);
    },
  };
}

const bytesOf = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);

/**
 * A request whose refusal, whatever the hub's code, is 'net/refused' to the caller (the hub's
 * code in `details.code`, its error as the cause): the all-reduce caller only needs to know the
 * hub said no.
 */
async function ask<K extends 'allreduce-report' | 'allreduce-fallback'>(
  session: HubSession,
  m: RequestBody<K>,
  round: string,
): Promise<ReplyOf<K>> {
  let reply: ReplyOf<K>;
  try {
    reply = await session.request(m);
  } catch (e) {
    if (!isHubRefusal(e)) throw e;
    throw new HearthError('net/refused', e.message, { details: { code: e.details.hubCode }, cause: e });
  }
  if (reply.round !== round) {
    throw new HearthError(
      'net/refused',
      `${m.type}: the hub answered for round ${reply.round}, not ${round}.`,
      {
        details: { type: reply.type },
      },
    );
  }
  return reply;
}

/**
 * Reports a round finished over the ring to the hub: its group, contributors, each signed
 * contribution and the mean's hash. Resolves with the hub's ack, whose `flagged` lists the
 * contributions it could not verify. Fails with 'input/invalid' for a result with an unsigned
 * contribution or one averaged by the hub (the hub saw those itself), 'net/refused' when the hub
 * refuses the report.
 *
 * @example
 * const r = await allReduceMean(node, { round, group, tensor, identity });
 * const { flagged } = await reportRound(session, round, group, r);
 */
export async function reportRound(
  session: HubSession,
  round: string,
  group: readonly string[],
  result: AllReduceResult,
): Promise<AllReduceAckMessage> {
  if (result.via !== 'ring') {
    throw new HearthError(
      'input/invalid',
      `round ${round} was averaged by the hub, which saw every contribution.`,
    );
  }
  const contributions = result.contributions.map((c) => {
    if (c.volunteer === undefined || c.signature === undefined) {
      throw new HearthError('input/invalid', `round ${round}: the contribution of ${c.peer} is not signed.`, {
        details: { peer: c.peer },
      });
    }
    return { peer: c.peer, volunteer: c.volunteer, sha256: c.sha256, signature: c.signature };
  });
  return ask<'allreduce-report'>(
    session,
    {
      type: 'allreduce-report',
      round,
      group,
      contributors: result.contributors,
      contributions,
      mean: await sha256Hex(bytesOf(result.mean)),
      dropped: result.dropped.map((d) => d.peer),
    },
    round,
  );
}

export interface HubAllReduceOptions {
  readonly round: string;
  readonly group: readonly string[];
  readonly tensor: Float32Array;
  /** SHA-256 of the tensor's bytes, when already known. */
  readonly sha256?: string;
  /** `http(s)://host:port` of the hub (the session's). */
  readonly hubUrl: string;
  /** Default the global fetch. */
  readonly fetch?: typeof fetch;
}

async function hubError(res: Response, what: string): Promise<HearthError> {
  let message = `${res.status}`;
  let code: unknown;
  try {
    const body = (await res.json()) as { error?: { code?: unknown; message?: unknown } };
    code = body.error?.code;
    if (typeof body.error?.message === 'string')
      message = `${res.status} ${body.error.message.slice(0, 500)}`;
  } catch {
    // Not JSON: the status says enough.
  }
  return new HearthError(
    res.status === 400 || res.status === 413 ? 'input/invalid' : 'net/refused',
    `${what}: the hub answered ${message}`,
    {
      details: { status: res.status, ...(typeof code === 'string' ? { code } : {}) },
    },
  );
}

/**
 * Averages `tensor` through the hub: asks for a ticket on the control plane, uploads the tensor,
 * and waits for the hub's mean of the group's uploads (all of them, or those in by the round's
 * deadline). The mean is the same bits for every member; `contributors` says whose tensors are
 * in it. Works without any peer connection (a volunteer with P2P off).
 *
 * @example
 * const { mean, contributors } = await hubAllReduce(session, { hubUrl, round, group, tensor });
 */
export async function hubAllReduce(
  session: HubSession,
  o: HubAllReduceOptions,
): Promise<AllReduceFallbackResult> {
  const doFetch = o.fetch ?? fetch;
  const sha256 = o.sha256 ?? (await sha256Hex(bytesOf(o.tensor)));
  const reply = await ask<'allreduce-fallback'>(
    session,
    { type: 'allreduce-fallback', round: o.round, group: o.group, elements: o.tensor.length, sha256 },
    o.round,
  );
  const base = `${new URL(o.hubUrl).origin}/v1/allreduce/${encodeURIComponent(o.round)}`;
  const auth = { authorization: `Bearer ${reply.ticket}` };
  let res: Response;
  try {
    res = await doFetch(`${base}/contributions`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: bytesOf(o.tensor).slice(),
    });
  } catch (e) {
    throw new HearthError('net/unreachable', `Uploading to ${base} failed: ${String(e)}.`, { cause: e });
  }
  if (res.status !== 201) throw await hubError(res, 'uploading the contribution');
  await res.arrayBuffer();
  try {
    res = await doFetch(`${base}/mean`, { headers: auth });
  } catch (e) {
    throw new HearthError('net/unreachable', `Reading the mean from ${base} failed: ${String(e)}.`, {
      cause: e,
    });
  }
  if (res.status !== 200) throw await hubError(res, 'reading the mean');
  return parseHubMean(await res.json(), o);
}

/** Checks the hub's mean (the volunteer trusts the hub to decide, not to be well formed). */
async function parseHubMean(v: unknown, o: HubAllReduceOptions): Promise<AllReduceFallbackResult> {
  const m = obj(v, 'mean');
  if (m.round !== o.round)
    throw new HearthError('net/protocol', `The hub answered the mean of another round.`);
  const members = new Set(o.group);
  const contributors = arr(m.contributors, 'mean.contributors', o.group.length).map((p, i) => {
    const peer = str(p, `mean.contributors[${i}]`, { pattern: PEER_ID });
    if (!members.has(peer))
      throw new HearthError('net/protocol', `The hub's mean names ${peer}, not in the group.`);
    return peer;
  });
  const contributions: Contribution[] = arr(m.contributions, 'mean.contributions', o.group.length).map(
    (c, i) => {
      const x = obj(c, `mean.contributions[${i}]`);
      return {
        peer: str(x.peer, `mean.contributions[${i}].peer`, { pattern: PEER_ID }),
        sha256: str(x.sha256, `mean.contributions[${i}].sha256`, { pattern: /^[0-9a-f]{64}$/ }),
        volunteer: str(x.volunteer, `mean.contributions[${i}].volunteer`, { pattern: /^[0-9a-f]{64}$/ }),
      };
    },
  );
  int(m.elements, 'mean.elements', o.tensor.length, o.tensor.length);
  const data = fromBase64Url(m.data, 'mean.data', o.tensor.length * 4);
  if (data.byteLength !== o.tensor.length * 4) {
    throw new HearthError(
      'net/protocol',
      `The hub's mean has ${data.byteLength} bytes, not ${o.tensor.length * 4}.`,
    );
  }
  const got = await sha256Hex(new Uint8Array(data));
  if (got !== m.sha256)
    throw new HearthError('net/protocol', "The hub's mean does not hash to the SHA-256 it gave.");
  return { mean: new Float32Array(data), contributors, contributions };
}

/**
 * The fallback allReduceMean takes: averages through the hub over `session` when the ring fails.
 *
 * @example
 * await allReduceMean(node, { round, group, tensor, identity, fallback: hubFallback(session, hubUrl) });
 */
export function hubFallback(session: HubSession, hubUrl: string, f?: typeof fetch): AllReduceFallback {
  return (req) =>
    hubAllReduce(session, {
      round: req.round,
      group: req.group,
      tensor: req.tensor,
      sha256: req.sha256,
      hubUrl,
      ...(f ? { fetch: f } : {}),
    });
}
