// WGSL shards used by the worker tests in Node and in Chromium: one correct, and one for each
// way a researcher's shard can be wrong.
import type { WgslDispatchShard as WgslShard } from '../../src/protocol/shard.ts';

export const SAXPY = `struct Params { a: f32, n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < p.n) { out[id.x] = p.a * x[id.x] + y[id.x]; }
}
`;

export function saxpyShard(
  n: number,
  a: number,
  source = SAXPY,
): { shard: WgslShard; x: Float32Array; y: Float32Array } {
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.5));
  const params = new ArrayBuffer(8);
  new Float32Array(params, 0, 1)[0] = a;
  new Uint32Array(params, 4, 1)[0] = n;
  const shard: WgslShard = {
    v: 1,
    kind: 'wgsl',
    id: `saxpy-${n}`,
    job: 'test',
    source,
    bindings: [
      { binding: 0, role: 'uniform', name: 'p', data: params },
      { binding: 1, role: 'input', name: 'x', tensor: { dtype: 'f32', shape: [n], data: x.slice().buffer } },
      { binding: 2, role: 'input', name: 'y', tensor: { dtype: 'f32', shape: [n], data: y.slice().buffer } },
      { binding: 3, role: 'output', name: 'out', dtype: 'f32', shape: [n] },
    ],
    dispatch: [Math.ceil(n / 64), 1, 1],
  };
  return { shard, x, y };
}

/** Each bad shard with the error code and message parts it must produce. */
export function badShards(): { what: string; shard: WgslShard; code: string; parts: string[] }[] {
  const base = saxpyShard(100, 2).shard;
  const with_ = (over: Partial<WgslShard>): WgslShard => ({ ...base, ...over });
  return [
    {
      what: 'compile error',
      shard: with_({ source: SAXPY.replace('p.a * x[id.x]', 'p.a * x[id.x'), id: 'bad-syntax' }),
      code: 'wgsl/compile',
      parts: ['"shard bad-syntax"', 'line 9', 'column 55'],
    },
    {
      what: 'binding missing from the manifest',
      shard: with_({ bindings: base.bindings.filter((b) => b.binding !== 2) }),
      code: 'wgsl/manifest',
      parts: ['declares @binding(2) "y"', 'no binding 2'],
    },
    {
      what: 'binding missing from the shader',
      shard: with_({
        bindings: [...base.bindings, { binding: 7, role: 'output', name: 'extra', dtype: 'f32', shape: [4] }],
      }),
      code: 'wgsl/manifest',
      parts: ['binding 7 (output "extra")', 'not declared'],
    },
    {
      what: 'output declared read-only',
      shard: with_({ source: SAXPY.replace('var<storage, read_write> out', 'var<storage, read> out') }),
      code: 'wgsl/manifest',
      parts: ['binding 3 (output "out")', 'var<storage, read_write>', 'line 5'],
    },
    {
      what: 'dtype differs from the shader',
      shard: with_({
        bindings: base.bindings.map((b) =>
          b.binding === 1
            ? { ...b, tensor: { dtype: 'i32' as const, shape: [100], data: new ArrayBuffer(400) } }
            : b,
        ) as WgslShard['bindings'],
      }),
      code: 'wgsl/manifest',
      parts: ['binding 1 (input "x") is i32', 'array<f32>'],
    },
    {
      what: 'missing entry point',
      shard: with_({ entryPoint: 'run' }),
      code: 'wgsl/manifest',
      parts: ['no @compute entry point "run"', 'main'],
    },
    {
      what: 'dispatch over the limit',
      shard: with_({ dispatch: [70000, 1, 1] }),
      code: 'gpu/limit',
      parts: ['70000', 'workgroups per dimension'],
    },
    {
      what: 'workgroup size over the limit',
      shard: with_({ source: SAXPY.replace('@workgroup_size(64)', '@workgroup_size(1024)') }),
      code: 'gpu/limit',
      parts: ['@workgroup_size(1024, 1, 1)', 'invocations'],
    },
  ];
}
