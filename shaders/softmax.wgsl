// y[r, :] = exp(x[r, :] − max) / Σ exp(x[r, :] − max) over the last axis: one workgroup per row.
// The row max and the sum are each a strided serial fold per invocation followed by a fixed
// tree in workgroup memory (no atomics): the same inputs give the same bits on every run.
alias T = f32;

struct Params {
  rows: u32, C: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

const WG: u32 = 256u;
var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  // Decided per workgroup, so returning here keeps the barriers below in uniform control flow.
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.C;

  // Row max; element 0 is a neutral start for max (C ≥ 1: empty rows are never dispatched).
  var m = f32(x[base]);
  for (var k = li; k < p.C; k += WG) { m = max(m, f32(x[base + k])); }
  part[li] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { part[li] = max(part[li], part[li + s]); }
    workgroupBarrier();
  }
  let rowMax = part[0];
  workgroupBarrier(); // everyone has read part[0] before it is overwritten

  var sum = 0.0;
  for (var k = li; k < p.C; k += WG) { sum += exp(f32(x[base + k]) - rowMax); }
  part[li] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { part[li] += part[li + s]; }
    workgroupBarrier();
  }
  let total = part[0];

  for (var k = li; k < p.C; k += WG) {
    y[base + k] = T(exp(f32(x[base + k]) - rowMax) / total);
  }
}
