// y[r, :] = exp(x[r, :] − max) / Σ exp(x[r, :] − max) over the last axis.
//
// A workgroup of WG = 64 invocations handles WG / LANES rows, LANES invocations ("lanes") per
// row; the host picks LANES (a power of two ≤ 64) so that each lane sees about 64 elements.
// Each lane folds its strided elements serially, in order: first its local max m, then
// s = Σ exp(x − m). The lanes' (m, s) pairs meet in workgroup memory behind ONE barrier, and
// every lane of the row then combines all of them, j = 0, 1, …, LANES−1 in that fixed order:
// M = max m_j, total = Σ s_j·exp(m_j − M). No atomics and a fixed order throughout, so the same
// inputs give the same bits on every run. The output pass recomputes exp(x − M) / total.
//
// Trade-off (GPU vs CPU emulation): a 256-invocation workgroup per row with an 8-level barrier
// tree per reduction is a fine GPU shape but slow on SwiftShader, whose cost grows with the
// invocations per row and with barriers (each barrier switches every 4-invocation group of the
// workgroup): 1024×1024 took ~580 ms that way, ~150 ms with 64 invocations, ~40 ms like this.
// One invocation per row would be faster still there but poor on GPUs (no parallelism within
// a row, uncoalesced loads), so lanes grow with C to keep ~64 elements each (16 lanes of vec4
// loads at C = 1024: 256 contiguous bytes per row and load; cf. warp-per-row softmax kernels),
// up to 64 lanes. Rows of very long C but few in number get less parallelism than the old shape.
// The combine's LANES extra exps per lane cost less than a second barrier would.
alias T = f32;

struct Params {
  rows: u32, C: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;
// The same bindings as vec4s, for main4 only (an entry point uses one view of each).
@group(0) @binding(1) var<storage, read> x4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<T>>;

const WG: u32 = 64u;
// Invocations per row: a power of two ≤ WG; a workgroup holds WG / LANES rows.
override LANES: u32 = 64u;

var<workgroup> partMax: array<f32, WG>;
var<workgroup> partSum: array<f32, WG>;

fn rowIndex(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
  return (wg.x + wg.y * nwg.x) * (WG / LANES) + li / LANES;
}

// (max, Σ exp(x − max)) of the row from each lane's (m, s), the same bits in all its lanes.
// Call from uniform control flow only.
fn combine(li: u32, m: f32, s: f32) -> vec2<f32> {
  partMax[li] = m;
  partSum[li] = s;
  workgroupBarrier();
  let first = li - li % LANES;
  var rowMax = partMax[first];
  for (var j = 1u; j < LANES; j++) { rowMax = max(rowMax, partMax[first + j]); }
  var total = 0.0;
  for (var j = 0u; j < LANES; j++) {
    let w = exp(partMax[first + j] - rowMax);
    // A lane whose elements are all −∞ has s = exp(−∞ + ∞) = NaN but weight 0: it adds nothing.
    total += select(partSum[first + j] * w, 0.0, w == 0.0);
  }
  // Workgroup memory is not written again, so no barrier is needed after these reads.
  return vec2(rowMax, total);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = rowIndex(wg, nwg, li);
  let lane = li % LANES;
  // Rows past the end (last workgroup) still reach the barrier, with no elements (n = 0).
  let n = select(0u, p.C, row < p.rows);
  let base = row * p.C;

  // Element 0 is a neutral start for max (C ≥ 1: empty rows are never dispatched).
  var m = 0.0;
  if (n > 0u) { m = f32(x[base]); }
  for (var k = lane; k < n; k += LANES) { m = max(m, f32(x[base + k])); }
  var s = 0.0;
  for (var k = lane; k < n; k += LANES) { s += exp(f32(x[base + k]) - m); }
  let r = combine(li, m, s);

  for (var k = lane; k < n; k += LANES) {
    y[base + k] = T(exp(f32(x[base + k]) - r.x) / r.y);
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

  var m4 = vec4(0.0);
  if (n > 0u) { m4 = vec4(f32(x4[base].x)); }
  for (var k = lane; k < n; k += LANES) { m4 = max(m4, vec4<f32>(x4[base + k])); }
  let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
  var s4 = vec4(0.0);
  for (var k = lane; k < n; k += LANES) { s4 += exp(vec4<f32>(x4[base + k]) - m); }
  let r = combine(li, m, (s4.x + s4.y) + (s4.z + s4.w));

  for (var k = lane; k < n; k += LANES) {
    y4[base + k] = vec4<T>(exp(vec4<f32>(x4[base + k]) - r.x) / r.y);
  }
}
