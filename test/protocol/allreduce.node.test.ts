// The all-reduce envelope (protocol/allreduce.ts, version 2): a signed contribution survives a
// round trip; every bad field of the new part (signature length, its characters, the reserved
// bytes, a signature on an all-gather message) is refused with 'net/protocol' naming the field;
// the contribution message is domain-separated from the hub's auth challenge.
import { describe, expect, it } from 'vitest';
import { isHearthError } from '../../src/core/errors.ts';
import {
  ALLREDUCE_PROTOCOL_VERSION,
  type AllReduceMessage,
  CONTRIBUTION_DOMAIN,
  contributionMessage,
  decodeAllReduce,
  encodeAllReduce,
  isContributionMessage,
  MAX_SIGNATURE_CHARS,
} from '../../src/protocol/allreduce.ts';
import { challengeBytes } from '../../src/protocol/control.ts';

const group = 'a1'.repeat(32);
const sha256 = 'b2'.repeat(32);
const signature = `${'Ab9_-'.repeat(17)}x`; // 86 base64url characters, like a P-256 signature

const reduce = (over: Partial<AllReduceMessage> = {}): AllReduceMessage => ({
  round: 'job-1/round-2',
  phase: 'reduce',
  step: 0,
  chunk: 1,
  totalElements: 10,
  groupSize: 3,
  group,
  dropped: [2],
  contribution: { index: 1, sha256, volunteer: 'c3'.repeat(32), signature },
  payload: Float32Array.from([1.5, -2, 3]),
  ...over,
});

function field(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    expect(isHearthError(e, 'net/protocol')).toBe(true);
    return (e as { details: { field: unknown } }).details.field;
  }
  throw new Error('expected a throw');
}

describe('all-reduce envelope v2 with signed contributions', () => {
  it('round-trips a signed contribution, and an unsigned one', () => {
    expect(ALLREDUCE_PROTOCOL_VERSION).toBe(2);
    const m = decodeAllReduce(encodeAllReduce(reduce()));
    expect(m.contribution).toEqual({ index: 1, sha256, volunteer: 'c3'.repeat(32), signature });
    expect([...m.payload]).toEqual([1.5, -2, 3]);
    expect(m.dropped).toEqual([2]);
    const bare = decodeAllReduce(encodeAllReduce(reduce({ contribution: { index: 1, sha256 } })));
    expect(bare.contribution).toEqual({ index: 1, sha256 });
  });

  it('refuses a bad signature field with net/protocol naming it', () => {
    const bytes = encodeAllReduce(reduce());
    const sigAt = bytes.indexOf('A'.charCodeAt(0), 96);
    const bad = bytes.slice();
    bad[sigAt] = '!'.charCodeAt(0);
    expect(field(() => decodeAllReduce(bad))).toBe('signature');
    const long = bytes.slice();
    new DataView(long.buffer).setUint16(92, MAX_SIGNATURE_CHARS + 1, true);
    expect(field(() => decodeAllReduce(long))).toBe('signature');
    const reserved = bytes.slice();
    reserved[94] = 1;
    expect(field(() => decodeAllReduce(reserved))).toBe('reserved');
    // A length that no longer adds up.
    const shorter = bytes.slice();
    new DataView(shorter.buffer).setUint16(92, 10, true);
    expect(field(() => decodeAllReduce(shorter))).toBe('length');
    // Version 1 envelopes are not read as version 2.
    const old = bytes.slice();
    old[1] = 1;
    expect(field(() => decodeAllReduce(old))).toBe('version');
  });

  it('refuses to encode a signature that is not base64url or too long', () => {
    for (const s of ['has space', 'A'.repeat(MAX_SIGNATURE_CHARS + 1)]) {
      expect(() => encodeAllReduce(reduce({ contribution: { index: 1, sha256, signature: s } }))).toThrow(
        /signature/,
      );
    }
  });

  it('refuses to encode a dropped index outside the group, which the decoder would refuse', () => {
    for (const d of [3, -1, 1.5]) {
      let caught: unknown;
      try {
        encodeAllReduce(reduce({ dropped: [d] }));
      } catch (e) {
        caught = e;
      }
      expect(isHearthError(caught, 'input/invalid')).toBe(true);
      expect((caught as Error).message).toMatch(/^dropped: index/);
    }
  });

  it('refuses a signature on an all-gather message', () => {
    const { contribution: _, ...rest } = reduce();
    const gather = encodeAllReduce({ ...rest, phase: 'gather', digest: sha256 });
    const m = decodeAllReduce(gather);
    expect(m.contribution).toBeUndefined();
    const forged = encodeAllReduce(reduce());
    forged[2] = 2; // phase: gather, with the reduce message's contribution and signature
    expect(field(() => decodeAllReduce(forged))).toBe('contribution');
  });

  it('signs a domain-separated message that no auth challenge can equal', () => {
    const msg = contributionMessage('job-1/round-2', sha256);
    expect(msg).toBe(`${CONTRIBUTION_DOMAIN}\njob-1/round-2\n${sha256}`);
    expect(isContributionMessage(msg)).toBe(true);
    const auth = new TextDecoder().decode(challengeBytes('nonce', 'id'));
    expect(isContributionMessage(auth)).toBe(false);
    expect(auth.split('\n')[0]).not.toBe(CONTRIBUTION_DOMAIN);
    expect(isContributionMessage(`${CONTRIBUTION_DOMAIN}\nr\n${sha256}\nmore`)).toBe(false);
    expect(isContributionMessage(`${CONTRIBUTION_DOMAIN}\n\n${sha256}`)).toBe(false);
    expect(isContributionMessage(`${CONTRIBUTION_DOMAIN}\nr\nnot-a-hash`)).toBe(false);
  });
});
