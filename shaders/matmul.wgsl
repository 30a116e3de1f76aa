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
var<workgroup> As: array<f32, 1024>; // [TK][TILE]: As[k * TILE + m]
var<workgroup> Bs: array<f32, 1024>; // [TK][TILE]: Bs[k * TILE + n]

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

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let b = wg.z;
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  let baseA = b * p.strideA;
  let baseB = b * p.strideB;
  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }

  let numTiles = (p.K + TK - 1u) / TK;
  for (var t = 0u; t < numTiles; t++) {
    let k0 = t * TK;
    // 256 invocations load 1024 elements of each tile: 4 each.
    for (var r = 0u; r < 4u; r++) {
      let e = li + r * 256u;
      let kk = e / TILE;
      let mm = e % TILE;
      As[e] = loadA(baseA, row0 + mm, k0 + kk);
      Bs[e] = loadB(baseB, k0 + kk, col0 + mm);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = As[kk * TILE + lid.y * 4u + i];
        bv[i] = Bs[kk * TILE + lid.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i * 4u + j] = fma(a[i], bv[j], acc[i * 4u + j]);
        }
      }
    }
    workgroupBarrier();
  }

  let baseC = b * p.strideC;
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + lid.y * 4u + i;
    if (row >= p.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x * 4u + j;
      if (col >= p.N) { continue; }
      var v = acc[i * 4u + j];
      if (HAS_BIAS) { v += f32(bias[col]); }
      C[baseC + row * p.N + col] = T(activate(v));
    }
  }
}
