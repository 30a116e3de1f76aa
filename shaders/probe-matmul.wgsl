// The capability probe's matmul: C = A·A for a square n×n A, each invocation computing a 4×4
// block straight from global memory. Simpler than shaders/matmul.wgsl so that it compiles in
// tens of milliseconds even on a CPU adapter, which keeps the whole probe under a second; its
// rate tracks the device's f32 throughput (the hub sizes shards by it, it is not a peak figure).
struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let q = p.n / 4u; // vec4s per row
  if (g.x >= q || g.y * 4u >= p.n) { return; }
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  let r = g.y * 4u;
  for (var k = 0u; k < q; k++) {
    let a0 = A[(r + 0u) * q + k];
    let a1 = A[(r + 1u) * q + k];
    let a2 = A[(r + 2u) * q + k];
    let a3 = A[(r + 3u) * q + k];
    let b0 = A[(4u * k + 0u) * q + g.x];
    let b1 = A[(4u * k + 1u) * q + g.x];
    let b2 = A[(4u * k + 2u) * q + g.x];
    let b3 = A[(4u * k + 3u) * q + g.x];
    c0 = fma(vec4<f32>(a0.x), b0, fma(vec4<f32>(a0.y), b1, fma(vec4<f32>(a0.z), b2, fma(vec4<f32>(a0.w), b3, c0))));
    c1 = fma(vec4<f32>(a1.x), b0, fma(vec4<f32>(a1.y), b1, fma(vec4<f32>(a1.z), b2, fma(vec4<f32>(a1.w), b3, c1))));
    c2 = fma(vec4<f32>(a2.x), b0, fma(vec4<f32>(a2.y), b1, fma(vec4<f32>(a2.z), b2, fma(vec4<f32>(a2.w), b3, c2))));
    c3 = fma(vec4<f32>(a3.x), b0, fma(vec4<f32>(a3.y), b1, fma(vec4<f32>(a3.z), b2, fma(vec4<f32>(a3.w), b3, c3))));
  }
  C[(r + 0u) * q + g.x] = c0;
  C[(r + 1u) * q + g.x] = c1;
  C[(r + 2u) * q + g.x] = c2;
  C[(r + 3u) * q + g.x] = c3;
}
