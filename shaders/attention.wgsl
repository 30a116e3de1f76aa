// Causal self-attention, fused: out[t] = Σ_{s≤t} softmax_s(q_t·k_s·scale) · v_s for Q, K, V of
// shape [B·H, seqLen, D] (contiguous). One workgroup per (b·h, block of BQ query rows), one
// invocation per query row, which keeps its q and its output accumulator in registers. K and V
// stream through workgroup memory BK keys at a time, four keys to a mat4x4 so that one
// vector-matrix product scores four keys and one matrix-vector product adds their weighted
// values; the softmax runs online in f32, so the [T, T] score matrix never exists. Every sum runs in a fixed order and no atomics are used:
// the result is the same bits on every run.
alias T = f32;

override BQ: u32 = 64u; // query rows per workgroup (= invocations)
override BK: u32 = 32u; // keys per tile, at most MAX_BK
override DP4: u32 = 16u; // head dim in vec4s (D padded to a multiple of 4), at most MAX_DP4
const MAX_BK: u32 = 32u;
const MAX_DP4: u32 = 32u;
const NEG: f32 = -3.0e38; // a masked score: exp(NEG − m) is 0 for every finite m

struct Params {
  bh: u32, seqLen: u32, D: u32, blocks: u32,
  scale: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> Q: array<T>;
@group(0) @binding(2) var<storage, read> K: array<T>;
@group(0) @binding(3) var<storage, read> V: array<T>;
@group(0) @binding(4) var<storage, read_write> O: array<T>;

// [key/4][d/4]: column j of Km[g * DP4 + i] is K[4g + j][4i .. 4i+3], so that q_i · Km is the
// partial scores of four keys and Vm · p their weighted sum of values.
var<workgroup> Km: array<mat4x4<f32>, (BK / 4u) * DP4>;
var<workgroup> Vm: array<mat4x4<f32>, (BK / 4u) * DP4>;

// Four consecutive elements d = 4i … 4i+3 of a row at `off`, zero past D.
fn loadQ(off: u32, i: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) {
    if (4u * i + c < p.D) { x[c] = f32(Q[off + 4u * i + c]); }
  }
  return x;
}

fn loadK(off: u32, i: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) {
    if (4u * i + c < p.D) { x[c] = f32(K[off + 4u * i + c]); }
  }
  return x;
}

fn loadV(off: u32, i: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) {
    if (4u * i + c < p.D) { x[c] = f32(V[off + 4u * i + c]); }
  }
  return x;
}

@compute @workgroup_size(BQ, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  // The last blocks see the most keys: hand them out first so they do not finish last.
  let q0 = (p.blocks - 1u - wg.x) * BQ;
  let base = wg.y * p.seqLen * p.D;
  let row = q0 + li;
  // Rows past the end compute as the last row (always at least key 0 to attend to), unstored.
  let qi = min(row, p.seqLen - 1u);

  var q: array<vec4<f32>, MAX_DP4>;
  var acc: array<vec4<f32>, MAX_DP4>;
  for (var i = 0u; i < DP4; i++) {
    q[i] = loadQ(base + qi * p.D, i) * p.scale;
    acc[i] = vec4<f32>(0.0);
  }
  var m = NEG; // running maximum of the row's scores
  var l = 0.0; // running denominator, relative to m

  let keys = min(q0 + BQ, p.seqLen);
  let tiles = (keys + BK - 1u) / BK;
  for (var t = 0u; t < tiles; t++) {
    let k0 = t * BK;
    for (var e = li; e < BK * DP4; e += BQ) {
      let key = k0 + e / DP4;
      var kx = vec4<f32>(0.0);
      var vx = vec4<f32>(0.0);
      if (key < p.seqLen) {
        kx = loadK(base + key * p.D, e % DP4);
        vx = loadV(base + key * p.D, e % DP4);
      }
      let c = e / DP4;
      let at = (c / 4u) * DP4 + e % DP4;
      Km[at][c % 4u] = kx;
      Vm[at][c % 4u] = vx;
    }
    workgroupBarrier();

    // Keys of this tile that this row attends to: the causal mask is a shorter loop. Keys go
    // four at a time so that each q and acc element is loaded once per four keys; the up to
    // three keys past nk in the last group get probability 0.
    let nk = select(0u, min(BK, qi + 1u - k0), qi + 1u > k0);
    let ng = (nk + 3u) / 4u;
    var s: array<vec4<f32>, MAX_BK / 4u>;
    var mt = m;
    for (var g = 0u; g < ng; g++) {
      var x = vec4<f32>(0.0);
      for (var i = 0u; i < DP4; i++) { x += q[i] * Km[g * DP4 + i]; }
      let sx = select(x, vec4<f32>(NEG), vec4<u32>(4u * g) + vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(nk));
      s[g] = sx;
      mt = max(mt, max(max(sx.x, sx.y), max(sx.z, sx.w)));
    }
    let alpha = exp(m - mt);
    m = mt;
    l *= alpha;
    // Once the row maximum settles, most tiles leave it unchanged: skip the rescale then.
    if (alpha != 1.0) {
      for (var i = 0u; i < DP4; i++) { acc[i] *= alpha; }
    }
    for (var g = 0u; g < ng; g++) {
      let pg = exp(s[g] - vec4<f32>(mt));
      l += (pg.x + pg.y) + (pg.z + pg.w);
      for (var i = 0u; i < DP4; i++) { acc[i] += Vm[g * DP4 + i] * pg; }
    }
    workgroupBarrier();
  }

  if (row < p.seqLen) {
    let inv = 1.0 / l;
    let off = base + row * p.D;
    for (var d = 0u; d < p.D; d++) { O[off + d] = T(acc[d / 4u][d % 4u] * inv); }
  }
}
