import { describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { shardCredit } from '../../src/protocol/flops.ts';
import { parseManifest } from '../../src/protocol/kinds/index.ts';

const H = (c: string) => c.repeat(64);
const onnx = (over: Record<string, unknown> = {}) => ({
  v: 1,
  kind: 'onnx',
  model: H('a'),
  inputs: {
    x: { sha256: H('b'), dtype: 'f32', shape: [10, 4] },
    w: { sha256: H('c'), dtype: 'f32', shape: [4] },
  },
  batchInput: 'x',
  shardSize: 3,
  replication: 2,
  tolerance: { rtol: 1e-4, atol: 1e-6 },
  deadlineMs: 60_000,
  creditRate: 1e-9,
  flopsPerShard: 2e9,
  ...over,
});
const wgsl = (over: Record<string, unknown> = {}) => ({
  v: 1,
  kind: 'wgsl',
  source: '@compute @workgroup_size(1) fn main() {}',
  shards: [
    {
      dispatch: [1, 1, 1],
      bindings: [
        { binding: 0, role: 'input', name: 'x', tensor: { sha256: H('d'), dtype: 'u32', shape: [4] } },
        { binding: 1, role: 'output', name: 'y', dtype: 'u32', shape: [4] },
        { binding: 2, role: 'uniform', name: 'p', sha256: H('e') },
      ],
    },
  ],
  replication: 3,
  maxReplicas: 5,
  tolerance: 'exact',
  deadlineMs: 10_000,
  creditRate: 1,
  flopsPerShard: 100,
  requirements: { minBufferBytes: 1024, features: ['shader-f16'] },
  ...over,
});

function rejects(v: unknown, message: RegExp): void {
  let err: unknown;
  try {
    parseManifest(v);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(HearthError);
  expect((err as HearthError).code).toBe('input/invalid');
  expect((err as HearthError).message).toMatch(message);
}

describe('job manifest validation', () => {
  it('accepts a good onnx manifest and defaults maxReplicas', () => {
    const m = parseManifest(onnx());
    expect(m.kind).toBe('onnx');
    expect(m.maxReplicas).toBe(5);
    expect(shardCredit(m)).toBe(2_000_000n); // 2e9 FLOPs × 1e-9: exactly 2 credits
    // Without a declared value (and before the hub counted the graph) an ONNX job credits nothing.
    const bare = parseManifest(onnx({ flopsPerShard: undefined }));
    expect(bare.kind === 'onnx' ? bare.flopsPerShard : 'wgsl').toBeUndefined();
    expect(shardCredit(bare)).toBe(0n);
  });

  it('accepts a good wgsl manifest with honeypots', () => {
    const hp = {
      ...wgsl().shards[0],
      expected: [{ name: 'y', sha256: H('f'), dtype: 'u32', shape: [4] }],
    };
    const m = parseManifest(wgsl({ honeypots: [hp] }));
    expect(m.kind === 'wgsl' && m.honeypots?.length).toBe(1);
    expect(m.requirements).toEqual({ minBufferBytes: 1024, features: ['shader-f16'] });
  });

  const bad: [string, unknown, RegExp][] = [
    ['not an object', 42, /^manifest: expected an object/],
    ['wrong version', onnx({ v: 2 }), /^manifest\.v:/],
    ['unknown kind', onnx({ kind: 'cuda' }), /^manifest\.kind:/],
    ['unknown field', onnx({ extra: 1 }), /unknown field "extra"/],
    ['model not a hash', onnx({ model: 'abc' }), /^manifest\.model:/],
    ['upper-case hash', onnx({ model: 'A'.repeat(64) }), /^manifest\.model:/],
    ['no inputs', onnx({ inputs: {} }), /^manifest\.inputs:/],
    [
      'bad dtype',
      onnx({ inputs: { x: { sha256: H('b'), dtype: 'f64', shape: [2] } } }),
      /manifest\.inputs\.x\.dtype/,
    ],
    [
      'bad shape',
      onnx({ inputs: { x: { sha256: H('b'), dtype: 'f32', shape: [-1] } } }),
      /manifest\.inputs\.x\.shape\[0\]/,
    ],
    ['missing batch input', onnx({ batchInput: 'z' }), /^manifest\.batchInput: "z"/],
    [
      'scalar batch',
      onnx({ inputs: { x: { sha256: H('b'), dtype: 'f32', shape: [] } } }),
      /^manifest\.batchInput:/,
    ],
    ['shardSize 0', onnx({ shardSize: 0 }), /^manifest\.shardSize:/],
    ['replication 0', onnx({ replication: 0 }), /^manifest\.replication:/],
    ['replication 1.5', onnx({ replication: 1.5 }), /^manifest\.replication:/],
    ['maxReplicas below replication', onnx({ maxReplicas: 1 }), /^manifest\.maxReplicas:/],
    ['tolerance string', onnx({ tolerance: 'close' }), /^manifest\.tolerance:/],
    ['negative rtol', onnx({ tolerance: { rtol: -1, atol: 0 } }), /^manifest\.tolerance\.rtol:/],
    ['NaN atol', onnx({ tolerance: { rtol: 0, atol: Number.NaN } }), /^manifest\.tolerance\.atol:/],
    ['deadline too short', onnx({ deadlineMs: 5 }), /^manifest\.deadlineMs:/],
    ['negative credit rate', onnx({ creditRate: -1 }), /^manifest\.creditRate:/],
    ['infinite flops', onnx({ flopsPerShard: Number.POSITIVE_INFINITY }), /^manifest\.flopsPerShard:/],
    [
      '"__proto__" as a tensor name (an own key from JSON.parse)',
      onnx({
        batchInput: '__proto__',
        inputs: JSON.parse(`{"__proto__": {"sha256": "${H('b')}", "dtype": "f32", "shape": [10, 4]}}`),
      }),
      /^manifest\.inputs\.__proto__: this name is not allowed/,
    ],
    // Required for WGSL only: an ONNX job's FLOPs are counted from its graph by the hub.
    ['missing flops (wgsl)', wgsl({ flopsPerShard: undefined }), /^manifest\.flopsPerShard:/],
    [
      "flopsByRows is the hub's, not the researcher's",
      onnx({ flopsByRows: {} }),
      /unknown field "flopsByRows"/,
    ],
    [
      'requirements features',
      onnx({ requirements: { features: [1] } }),
      /manifest\.requirements\.features\[0\]/,
    ],
    [
      'honeypot missing input',
      onnx({
        honeypots: [
          {
            inputs: { x: { sha256: H('b'), dtype: 'f32', shape: [1, 4] } },
            expected: [{ name: 'y', sha256: H('f'), dtype: 'f32', shape: [1] }],
          },
        ],
      }),
      /^manifest\.honeypots\[0\]\.inputs: missing input "w"/,
    ],
    [
      'honeypot without expected',
      onnx({ honeypots: [{ inputs: onnx().inputs, expected: [] }] }),
      /^manifest\.honeypots\[0\]\.expected:/,
    ],
    ['wgsl no shards', wgsl({ shards: [] }), /^manifest\.shards:/],
    ['wgsl no source', wgsl({ source: '' }), /^manifest\.source:/],
    ['wgsl bad entry point', wgsl({ entryPoint: '1main' }), /^manifest\.entryPoint:/],
    [
      'wgsl no output',
      wgsl({ shards: [{ dispatch: [1, 1, 1], bindings: [] }] }),
      /^manifest\.shards\[0\]\.bindings: a WGSL shard needs/,
    ],
    [
      'wgsl dispatch of 2',
      wgsl({ shards: [{ dispatch: [1, 1], bindings: wgsl().shards[0]!.bindings }] }),
      /^manifest\.shards\[0\]\.dispatch:/,
    ],
    [
      'wgsl dispatch 0',
      wgsl({ shards: [{ dispatch: [0, 1, 1], bindings: wgsl().shards[0]!.bindings }] }),
      /manifest\.shards\[0\]\.dispatch\[0\]/,
    ],
    [
      'wgsl duplicate binding',
      wgsl({
        shards: [
          { dispatch: [1, 1, 1], bindings: [wgsl().shards[0]!.bindings[1], wgsl().shards[0]!.bindings[1]] },
        ],
      }),
      /listed twice/,
    ],
    [
      'wgsl bad role',
      wgsl({ shards: [{ dispatch: [1, 1, 1], bindings: [{ binding: 0, role: 'scratch', name: 'a' }] }] }),
      /manifest\.shards\[0\]\.bindings\[0\]\.role/,
    ],
    [
      'wgsl uniform without hash',
      wgsl({ shards: [{ dispatch: [1, 1, 1], bindings: [{ binding: 0, role: 'uniform', name: 'p' }] }] }),
      /manifest\.shards\[0\]\.bindings\[0\]\.sha256/,
    ],
    [
      'oversized tensor',
      onnx({ inputs: { x: { sha256: H('b'), dtype: 'f32', shape: [1 << 20, 1 << 10] } } }),
      /^manifest\.inputs\.x: .*limit/,
    ],
  ];
  for (const [what, v, re] of bad) {
    it(`rejects ${what}`, () => rejects(v, re));
  }
});
