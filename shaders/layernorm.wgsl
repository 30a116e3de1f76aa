// y[r, :] = (x[r, :] − mean) · rstd · gamma + beta over the last axis, rstd = 1/√(var + eps):
// one workgroup per row. The mean and then the variance (two passes, Σ(x − mean)², so no
// cancellation) are each a strided serial fold per invocation and a fixed tree in workgroup
// memory (no atomics): the same inputs give the same bits on every run. mean and rstd are kept
// in f32 whatever T is, for the backward pass.
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

const WG: u32 = 256u;
var<workgroup> part: array<f32, 256>;

// Σ of every invocation's `v`, the same in all of them. Call from uniform control flow only.
fn workgroupSum(li: u32, v: f32) -> f32 {
  part[li] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { part[li] += part[li + s]; }
    workgroupBarrier();
  }
  let total = part[0];
  workgroupBarrier(); // everyone has read part[0] before the next call overwrites it
  return total;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  // Decided per workgroup, so returning here keeps the barriers below in uniform control flow.
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;
  let n = f32(p.C);
  // Sums run over x − x[row, 0]: a large common offset cancels exactly there (Sterbenz) instead
  // of rounding the mean to the offset's ulp.
  let shift = f32(x[base]);

  var s = 0.0;
  for (var k = li; k < p.C; k += WG) { s += f32(x[base + k]) - shift; }
  let m = workgroupSum(li, s) / n; // mean − shift

  var q = 0.0;
  for (var k = li; k < p.C; k += WG) {
    let d = (f32(x[base + k]) - shift) - m;
    q += d * d;
  }
  let rstd = inverseSqrt(workgroupSum(li, q) / n + p.eps);

  for (var k = li; k < p.C; k += WG) {
    let xhat = ((f32(x[base + k]) - shift) - m) * rstd;
    y[base + k] = T(xhat * f32(gamma[k]) + f32(beta[k]));
  }
  if (li == 0u) {
    meanOut[row] = shift + m;
    rstdOut[row] = rstd;
  }
}
