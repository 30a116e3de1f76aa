// y[r, :] = (x[r, :] − mean) · rstd · gamma + beta over the last axis, rstd = 1/√(var + eps).
// The mean and then the variance (two passes, Σ(x − mean)², so no cancellation) are each a
// strided serial fold per invocation and a fixed-order sum of the row's partials in workgroup
// memory (no atomics): the same inputs give the same bits on every run. mean and rstd are kept
// in f32 whatever T is, for the backward pass.
//
// Layout as in softmax.wgsl (see the trade-off note there): a workgroup of WG = 64 invocations
// handles WG / LANES rows with LANES invocations ("lanes") per row, LANES a power of two the
// host picks for ~64 elements per lane. Each sum takes one barrier: every lane writes its
// partial, then every lane of the row adds all LANES partials, j = 0, 1, … in that order (no
// barrier tree). C % 4 == 0 rows use vec4 loads (main4).
alias T = f32;

struct Params {
  rows: u32, C: u32, eps: f32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> gamma: array<T>;
@group(0) @binding(3) var<storage, read> beta: array<T>;
@group(0) @binding(4) var<storage, read_write> y: array<T>;
@group(0) @binding(5) var<storage, read_write> meanOut: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstdOut: array<f32>;
// The same bindings as vec4s, for main4 only (an entry point uses one view of each).
@group(0) @binding(1) var<storage, read> x4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> gamma4: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> beta4: array<vec4<T>>;
@group(0) @binding(4) var<storage, read_write> y4: array<vec4<T>>;

const WG: u32 = 64u;
// Invocations per row: a power of two ≤ WG; a workgroup holds WG / LANES rows.
override LANES: u32 = 64u;

// One array per sum, so the second sum's writes never race the first sum's reads.
var<workgroup> partMean: array<f32, WG>;
var<workgroup> partVar: array<f32, WG>;

fn rowIndex(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
  return (wg.x + wg.y * nwg.x) * (WG / LANES) + li / LANES;
}

// Σ of `v` over the lanes of li's row, the same bits in all of them. Call from uniform control
// flow only, and with each array once (it is not written again, so no barrier after the reads).
fn rowSum(part: ptr<workgroup, array<f32, WG>>, li: u32, v: f32) -> f32 {
  (*part)[li] = v;
  workgroupBarrier();
  let first = li - li % LANES;
  var total = 0.0;
  for (var j = 0u; j < LANES; j++) { total += (*part)[first + j]; }
  return total;
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = rowIndex(wg, nwg, li);
  let lane = li % LANES;
  // Rows past the end (last workgroup) still reach the barriers, with no elements (n = 0).
  let n = select(0u, p.C, row < p.rows);
  let base = row * p.C;
  let count = f32(p.C);
  // Sums run over x − x[row, 0]: a large common offset cancels exactly there (Sterbenz) instead
  // of rounding the mean to the offset's ulp.
  var shift = 0.0;
  if (n > 0u) { shift = f32(x[base]); }

  var s = 0.0;
  for (var k = lane; k < n; k += LANES) { s += f32(x[base + k]) - shift; }
  let m = rowSum(&partMean, li, s) / count; // mean − shift

  var q = 0.0;
  for (var k = lane; k < n; k += LANES) {
    let d = (f32(x[base + k]) - shift) - m;
    q += d * d;
  }
  let rstd = inverseSqrt(rowSum(&partVar, li, q) / count + p.eps);

  for (var k = lane; k < n; k += LANES) {
    let xhat = ((f32(x[base + k]) - shift) - m) * rstd;
    y[base + k] = T(xhat * f32(gamma[k]) + f32(beta[k]));
  }
  if (n > 0u && lane == 0u) {
    meanOut[row] = shift + m;
    rstdOut[row] = rstd;
  }
}

// C % 4 == 0: rows start 16-byte aligned (8 for f16), so each lane loads vec4s.
@compute @workgroup_size(WG, 1, 1)
fn main4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
  let row = rowIndex(wg, nwg, li);
  let lane = li % LANES;
  let n = select(0u, p.C / 4u, row < p.rows);
  let base = row * (p.C / 4u);
  let count = f32(p.C);
  var shift = 0.0;
  if (n > 0u) { shift = f32(x4[base].x); }

  var s4 = vec4(0.0);
  for (var k = lane; k < n; k += LANES) { s4 += vec4<f32>(x4[base + k]) - shift; }
  let m = rowSum(&partMean, li, (s4.x + s4.y) + (s4.z + s4.w)) / count;

  var q4 = vec4(0.0);
  for (var k = lane; k < n; k += LANES) {
    let d = (vec4<f32>(x4[base + k]) - shift) - m;
    q4 += d * d;
  }
  let rstd = inverseSqrt(rowSum(&partVar, li, (q4.x + q4.y) + (q4.z + q4.w)) / count + p.eps);

  for (var k = lane; k < n; k += LANES) {
    let xhat = ((vec4<f32>(x4[base + k]) - shift) - m) * rstd;
    y4[base + k] = vec4<T>(xhat * vec4<f32>(gamma4[k]) + vec4<f32>(beta4[k]));
  }
  if (n > 0u && lane == 0u) {
    meanOut[row] = shift + m;
    rstdOut[row] = rstd;
  }
}
