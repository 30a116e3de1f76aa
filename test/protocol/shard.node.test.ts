import { describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import { parseShard } from '../../src/protocol/kinds/index.ts';
import { SHARD_LIMITS, type ShardResult, verifyResultHashes } from '../../src/protocol/shard.ts';
import { saxpyShard } from '../worker/wgsl-shards.ts';

const HASH = 'ab'.repeat(32);
const onnx = (over: Record<string, unknown> = {}) => ({
  v: 1,
  kind: 'onnx',
  id: 'job-1/0',
  job: 'job-1',
  model: HASH,
  inputs: { x: { dtype: 'f32', shape: [2, 2], data: new ArrayBuffer(16) } },
  ...over,
});

function rejects(v: unknown, message: RegExp): void {
  let err: unknown;
  try {
    parseShard(v);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(HearthError);
  expect((err as HearthError).code).toBe('input/invalid');
  expect((err as HearthError).message).toMatch(message);
}

describe('shard protocol validation', () => {
  it('accepts well-formed onnx and wgsl shards, keeping only known fields', () => {
    const s = parseShard(onnx({ outputs: ['y'], backend: 'wasm', budgetMs: 1000 }));
    expect(s).toMatchObject({ kind: 'onnx', model: HASH, outputs: ['y'], backend: 'wasm', budgetMs: 1000 });
    const w = parseShard(saxpyShard(8, 1).shard);
    expect(w.kind).toBe('wgsl');
  });

  it('accepts typed arrays as tensor data, copied to exactly their bytes', () => {
    const big = new Float32Array(8);
    const view = big.subarray(2, 6);
    const s = parseShard(onnx({ inputs: { x: { dtype: 'f32', shape: [4], data: view } } }));
    expect(s.kind === 'onnx' && s.inputs.x!.data.byteLength).toBe(16);
  });

  it('names the bad field in every refusal', () => {
    rejects(null, /^shard: expected an object, got null/);
    rejects(onnx({ v: 9 }), /shard protocol 1, the shard says 9/);
    rejects(onnx({ kind: 'cuda' }), /shard.kind: expected one of "onnx", "wgsl"/);
    rejects(onnx({ id: 'has spaces' }), /shard.id/);
    rejects(onnx({ model: 'abc' }), /shard.model: expected the SHA-256/);
    rejects(onnx({ inputs: {} }), /shard.inputs: expected 1 to 64 named tensors, got 0/);
    rejects(
      onnx({ inputs: { x: { dtype: 'f64', shape: [1], data: new ArrayBuffer(8) } } }),
      /shard.inputs.x.dtype/,
    );
    rejects(
      onnx({ inputs: { x: { dtype: 'f32', shape: [2, -1], data: new ArrayBuffer(8) } } }),
      /shard.inputs.x.shape\[1\]/,
    );
    rejects(
      onnx({ inputs: { x: { dtype: 'f32', shape: [3], data: new ArrayBuffer(8) } } }),
      /needs 12 bytes of data, got 8/,
    );
    rejects(
      onnx({ inputs: { x: { dtype: 'f32', shape: [1], data: 'AAAA' } } }),
      /shard.inputs.x.data: expected an ArrayBuffer/,
    );
    rejects(onnx({ colour: 'red' }), /unknown field "colour"/);
    rejects(onnx({ budgetMs: 0 }), /shard.budgetMs/);
    const huge = SHARD_LIMITS.maxTensorBytes / 4 + 1;
    rejects(
      onnx({ inputs: { x: { dtype: 'f32', shape: [huge], data: new ArrayBuffer(8) } } }),
      /over the 268435456-byte limit/,
    );
  });

  it('refuses malformed wgsl manifests', () => {
    const { shard } = saxpyShard(8, 1);
    rejects({ ...shard, bindings: [...shard.bindings, shard.bindings[0]] }, /binding 0 is listed twice/);
    rejects({ ...shard, bindings: shard.bindings.filter((b) => b.role !== 'output') }, /at least one output/);
    rejects(
      { ...shard, bindings: [{ ...shard.bindings[0], data: new ArrayBuffer(6) }] },
      /non-zero multiple of 4, got 6/,
    );
    rejects({ ...shard, dispatch: [0, 1, 1] }, /shard.dispatch\[0\]/);
    rejects({ ...shard, entryPoint: 'main()' }, /shard.entryPoint/);
    rejects({ ...shard, source: '' }, /shard.source: expected a non-empty string/);
  });

  it('detects a result whose output bytes do not match their hash', async () => {
    const data = new Float32Array([1, 2, 3]).buffer;
    const result: ShardResult = {
      v: 1,
      shard: 's',
      job: 'j',
      kind: 'wgsl',
      backend: 'webgpu',
      device: 'test',
      ms: 1,
      outputs: [{ name: 'y', dtype: 'f32', shape: [3], data, sha256: await sha256Hex(data) }],
    };
    await expect(verifyResultHashes(result, sha256Hex)).resolves.toBeUndefined();
    new Float32Array(data)[1] = 5;
    await expect(verifyResultHashes(result, sha256Hex)).rejects.toMatchObject({
      message: /does not match its SHA-256/,
    });
  });
});
