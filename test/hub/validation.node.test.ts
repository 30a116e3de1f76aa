// Validation decisions as pure functions (src/hub/validation.ts): no store, no scheduler — records
// in, a decision out. The Scheduler tests cover the same rules through every store.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { freshVolunteer, judged, trusted } from '../../src/hub/reputation.ts';
import {
  type Candidate,
  commonestError,
  decideReplicas,
  errorSignature,
  honeypotPasses,
  type ReplicaRule,
  type ShardError,
} from '../../src/hub/validation.ts';
import type { OutputTensor } from '../../src/protocol/shard.ts';

const out = (values: number[]): OutputTensor[] => {
  const data = Float32Array.from(values).buffer;
  return [
    {
      name: 'y',
      dtype: 'f32',
      shape: [values.length],
      data,
      sha256: createHash('sha256').update(new Uint8Array(data)).digest('hex'),
    },
  ];
};
const ok = (id: string, values: number[]): Candidate => ({ id, volunteer: id, outputs: out(values) });
const err = (id: string, e: ShardError): Candidate => ({ id, volunteer: id, outputs: [], error: e });
const rule = (over: Partial<ReplicaRule> = {}): ReplicaRule => ({
  quorum: 2,
  maxReplicas: 5,
  tolerance: { rtol: 1e-4, atol: 1e-6 },
  wanted: 2,
  errorQuorum: 2,
  ...over,
});
const compile = (line: number): ShardError => ({
  code: 'wgsl/compile',
  message: `WGSL error in shader "shard job-1/${line}" at line 3, column 9: expected ')'`,
});

describe('decideReplicas', () => {
  it('waits for a quorum, then validates the agreeing group and outvotes the rest', () => {
    expect(decideReplicas([ok('a', [1, 2])], rule())).toEqual({ kind: 'wait', wanted: 2 });
    expect(decideReplicas([ok('a', [1, 2]), ok('b', [9, 9])], rule())).toEqual({ kind: 'wait', wanted: 3 });
    expect(decideReplicas([ok('a', [1, 2]), ok('b', [9, 9]), ok('c', [1, 2.00001])], rule())).toEqual({
      kind: 'validated',
      canonical: 'a',
      agreeing: ['a', 'c'],
      outvoted: ['b'],
    });
  });

  it('fails a shard whose replicas cannot agree within maxReplicas, naming no error', () => {
    const r = [ok('a', [1]), ok('b', [2]), ok('c', [3])];
    expect(decideReplicas(r, rule({ maxReplicas: 3 }))).toEqual({ kind: 'failed' });
  });

  it('NaN never forms a quorum, even two identical NaN results', () => {
    const d = decideReplicas([ok('a', [Number.NaN]), ok('b', [Number.NaN])], rule());
    expect(d.kind).toBe('wait');
  });

  it('the same deterministic error from errorQuorum volunteers fails the shard with it', () => {
    expect(decideReplicas([err('a', compile(0))], rule())).toEqual({ kind: 'wait', wanted: 3 });
    // Shard ids in the message are not part of the error: two shards' reports are the same error.
    const d = decideReplicas([err('a', compile(0)), err('b', compile(7))], rule());
    expect(d).toEqual({ kind: 'failed', error: compile(0) });
  });

  it('errors do not outvote results: a model failing on some devices only is not the researcher’s error', () => {
    const e: ShardError = { code: 'onnx/run', message: 'webgpu backend failed' };
    const d = decideReplicas([ok('a', [1]), err('b', e), err('c', e)], rule({ quorum: 2 }));
    expect(d.kind).toBe('wait');
    // Out of attempts: the errors outnumber the one result, so they are the likelier story.
    const last = decideReplicas(
      [ok('a', [1]), err('b', e), err('c', e)],
      rule({ quorum: 2, maxReplicas: 3 }),
    );
    expect(last).toEqual({ kind: 'failed', error: e });
  });

  it('different errors are counted apart', () => {
    const other: ShardError = { code: 'wgsl/manifest', message: 'binding 2 is not declared' };
    expect(decideReplicas([err('a', compile(0)), err('b', other)], rule()).kind).toBe('wait');
    expect(commonestError([err('a', compile(0)), err('b', other), err('c', compile(1))])).toEqual({
      error: compile(0),
      count: 2,
    });
    expect(errorSignature(compile(1))).toBe(errorSignature(compile(2)));
    expect(errorSignature(compile(1))).not.toBe(errorSignature(other));
  });
});

describe('honeypotPasses', () => {
  const expected = (values: number[]) => {
    const o = out(values)[0]!;
    return [{ name: o.name, sha256: o.sha256, dtype: o.dtype, shape: o.shape }];
  };
  it('compares values within tolerance when the expected bytes are at hand, else hashes', () => {
    const want = Float32Array.of(1, 2).buffer;
    const bytes = () => want;
    expect(honeypotPasses(out([1, 2.00001]), expected([1, 2]), { rtol: 1e-4, atol: 0 }, bytes)).toBe(true);
    expect(honeypotPasses(out([1, 2.1]), expected([1, 2]), { rtol: 1e-4, atol: 0 }, bytes)).toBe(false);
    expect(
      honeypotPasses(out([1, 2.00001]), expected([1, 2]), { rtol: 1e-4, atol: 0 }, () => undefined),
    ).toBe(false);
    expect(honeypotPasses(out([1, 2]), expected([1, 2]), 'exact', () => undefined)).toBe(true);
    expect(honeypotPasses([], expected([1, 2]), 'exact', () => undefined)).toBe(false);
  });
});

describe('reputation', () => {
  it('a wrong answer costs five times a right one and ends the streak; honeypots count apart', () => {
    let v = freshVolunteer('v');
    v = judged(v, { valid: true, weight: 1 });
    v = judged(v, { valid: true, weight: 1, honeypot: true });
    expect(v).toMatchObject({ reputation: 2, streak: 2, valid: 2, honeypots: 1 });
    v = judged(v, { valid: false, weight: 10 });
    expect(v).toMatchObject({ reputation: -48, streak: 0, invalid: 1, honeypots: 1 });
  });

  it('trust needs both a streak and honeypots passed', () => {
    const policy = { streak: 3, honeypots: 2 };
    const base = { ...freshVolunteer('v'), streak: 10 };
    expect(trusted(base, policy)).toBe(false);
    expect(trusted({ ...base, honeypots: 2 }, policy)).toBe(true);
    expect(trusted({ ...base, streak: 2, honeypots: 5 }, policy)).toBe(false);
  });
});
