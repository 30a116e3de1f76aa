// C[b] = act(op(A[b]) · op(B[b]) + bias), tiled 64×64 per workgroup, 4×4 outputs per invocation.
// op(X) is X or Xᵀ (TRANS_A / TRANS_B). A batch stride of 0 broadcasts that operand.
// Each output sums k = 0..K-1 in order in f32: the result is the same bits on every run.
alias T = f32;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
// 0 none, 1 relu, 2 gelu (tanh form), 3 silu
override ACT: u32 = 0u;

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  strideA: u32, strideB: u32, strideC: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<T>;
@group(0) @binding(2) var<storage, read> B: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read_write> C: array<T>;

const TILE: u32 = 64u;
const TK: u32 = 16u;
// Tiles in workgroup memory as vec4s: As[k][m/4] holds rows m..m+3 of column k, Bs[k][n/4]
// columns n..n+3 of row k. One vec4 load per operand per step and four vec4 accumulators:
// private arrays indexed in loops compile badly on some backends (SwiftShader: 4× slower).
var<workgroup> As: array<vec4<f32>, 256>;
var<workgroup> Bs: array<vec4<f32>, 256>;

fn loadA(base: u32, m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  if (TRANS_A) { return f32(A[base + k * p.M + m]); }
  return f32(A[base + m * p.K + k]);
}

fn loadB(base: u32, k: u32, n: u32) -> f32 {
  if (k >= p.K || n >= p.N) { return 0.0; }
  if (TRANS_B) { return f32(B[base + n * p.K + k]); }
  return f32(B[base + k * p.N + n]);
}

fn activate(x: f32) -> f32 {
  switch (ACT) {
    case 1u: { return max(x, 0.0); }
    case 2u: {
      let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
      return 0.5 * x * (1.0 + tanh(u));
    }
    case 3u: { return x / (1.0 + exp(-x)); }
    default: { return x; }
  }
}

fn store(baseC: u32, row: u32, col0: u32, acc: vec4<f32>) {
  if (row >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    let col = col0 + j;
    if (col >= p.N) { return; }
    var v = acc[j];
    if (HAS_BIAS) { v += f32(bias[col]); }
    C[baseC + row * p.N + col] = T(activate(v));
  }
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let b = wg.z;
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  let baseA = b * p.strideA;
  let baseB = b * p.strideB;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  // Invocation li loads the vec4 at (k = li / 16, quad = li % 16) of each tile.
  let lk = li / 16u;
  let lq = (li % 16u) * 4u;

  let numTiles = (p.K + TK - 1u) / TK;
  for (var t = 0u; t < numTiles; t++) {
    let k = t * TK + lk;
    As[li] = vec4<f32>(loadA(baseA, row0 + lq, k), loadA(baseA, row0 + lq + 1u, k),
                       loadA(baseA, row0 + lq + 2u, k), loadA(baseA, row0 + lq + 3u, k));
    Bs[li] = vec4<f32>(loadB(baseB, k, col0 + lq), loadB(baseB, k, col0 + lq + 1u),
                       loadB(baseB, k, col0 + lq + 2u), loadB(baseB, k, col0 + lq + 3u));
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      let a = As[kk * 16u + lid.y];
      let bv = Bs[kk * 16u + lid.x];
      acc0 = fma(vec4<f32>(a.x), bv, acc0);
      acc1 = fma(vec4<f32>(a.y), bv, acc1);
      acc2 = fma(vec4<f32>(a.z), bv, acc2);
      acc3 = fma(vec4<f32>(a.w), bv, acc3);
    }
    workgroupBarrier();
  }

  let baseC = b * p.strideC;
  let r = row0 + lid.y * 4u;
  let c = col0 + lid.x * 4u;
  store(baseC, r, c, acc0);
  store(baseC, r + 1u, c, acc1);
  store(baseC, r + 2u, c, acc2);
  store(baseC, r + 3u, c, acc3);
}
