// Softmax cross-entropy over the last dimension, with its gradient for a mean over rows.
//   loss[r]       = logsumexp(x[r, :]) − x[r, t_r]         (max-subtracted: no overflow)
//   dlogits[r, j] = (softmax(x[r, :])_j − [j = t_r]) / n   n = rows whose target ≠ ignoreIndex
// A row whose target is ignoreIndex gets loss 0 and gradient 0. A row whose target is outside
// [0, V) (and not ignoreIndex) gets loss NaN, so the error shows, and gradient 0; its target is
// never used as an index, so nothing is read out of bounds.
// Entry `count` (one workgroup) counts n first; entry `main` then runs WG_ROW / LANES rows per
// workgroup with LANES invocations ("lanes") per row, as the row kernels do (softmax.wgsl; the
// host picks LANES for ~64 elements a lane): each max and sum is a strided serial loop per lane,
// then every lane of the row folds the LANES partials in order after one barrier. The same bits
// on every run. (One 256-invocation workgroup per row with two 8-step barrier trees used to be a
// quarter of a training step's time on a CPU adapter.)
alias T = f32;

struct Params {
  rows: u32, V: u32, ignoreIndex: i32,
  // Quiet NaN's bits, 0x7fc00000: a NaN literal or constant is a shader-creation error in WGSL.
  nanBits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// entry `count`
@group(0) @binding(1) var<storage, read> countTargets: array<i32>;
@group(0) @binding(2) var<storage, read_write> countOut: array<u32>;

// entry `main`
@group(0) @binding(1) var<storage, read> logits: array<T>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> counted: array<u32>;
@group(0) @binding(4) var<storage, read_write> loss: array<T>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<T>;

const WG: u32 = 256u;
var<workgroup> redU: array<u32, 256>;

@compute @workgroup_size(256)
fn count(@builtin(local_invocation_index) li: u32) {
  var c = 0u;
  for (var r = li; r < p.rows; r += WG) {
    if (countTargets[r] != p.ignoreIndex) { c += 1u; }
  }
  redU[li] = c;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { redU[li] += redU[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u) { countOut[0] = redU[0]; }
}

const WG_ROW: u32 = 64u;
// Invocations per row in `main`: a power of two ≤ WG_ROW.
override LANES: u32 = 64u;
var<workgroup> partMax: array<f32, WG_ROW>;
var<workgroup> partSum: array<f32, WG_ROW>;

@compute @workgroup_size(WG_ROW)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = (wg.x + wg.y * nwg.x) * (WG_ROW / LANES) + li / LANES;
  let lane = li % LANES;
  let first = li - lane;
  // Rows past the end (last workgroup) still reach the barriers, with no elements.
  let live = row < p.rows;
  let n = select(0u, p.V, live);
  let base = row * p.V;

  var m = -0x1.fffffep+127f; // the lowest f32
  for (var j = lane; j < n; j += LANES) { m = max(m, f32(logits[base + j])); }
  partMax[li] = m;
  workgroupBarrier();
  var mx = partMax[first];
  for (var k = 1u; k < LANES; k++) { mx = max(mx, partMax[first + k]); }

  var sum = 0.0;
  for (var j = lane; j < n; j += LANES) { sum += exp(f32(logits[base + j]) - mx); }
  partSum[li] = sum;
  workgroupBarrier();
  var total = 0.0;
  for (var k = 0u; k < LANES; k++) { total += partSum[first + k]; }
  if (!live) { return; }

  let t = targets[row];
  let ignored = t == p.ignoreIndex;
  let valid = !ignored && t >= 0 && u32(t) < p.V;
  let cnt = counted[0];
  let scale = select(0.0, 1.0 / f32(cnt), valid && cnt > 0u);
  let tu = select(0xffffffffu, u32(t), valid);
  let inv = 1.0 / total;
  for (var j = lane; j < n; j += LANES) {
    let prob = exp(f32(logits[base + j]) - mx) * inv;
    dlogits[base + j] = T((prob - select(0.0, 1.0, j == tu)) * scale);
  }
  if (lane == 0u) {
    var l = 0.0;
    if (valid) {
      l = (mx - f32(logits[base + tu])) + log(total);
    } else if (!ignored) {
      l = bitcast<f32>(p.nanBits);
    }
    loss[row] = T(l);
  }
}
