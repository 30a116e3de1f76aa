// y[o, i] = OP over k of x[o, k, i], with x viewed as [outer, n, inner]. A workgroup of 256
// invocations covers `cols` adjacent outputs (cols a power of two, chosen on the host from the
// shape): invocation li works on column c = li % cols and folds k = j, j + ks, … in order, where
// j = li / cols and ks = 256 / cols; then a fixed tree over j in workgroup memory combines the
// ks partials of each column. No atomics: the same inputs give the same bits on every run.
alias T = f32;

// 0 sum, 1 max, 2 mean
override OP: u32 = 0u;

struct Params {
  outer: u32, n: u32, inner: u32, colBlocks: u32,
  cols: u32, ks: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

var<workgroup> part: array<f32, 256>;

fn combine(u: f32, v: f32) -> f32 {
  if (OP == 1u) { return max(u, v); }
  return u + v;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  // Decided per workgroup, so returning here keeps the barriers below in uniform control flow.
  let wid = wg.x + wg.y * nwg.x;
  if (wid >= p.outer * p.colBlocks) { return; }
  let o = wid / p.colBlocks;
  let c = li % p.cols;
  let j = li / p.cols;
  let col = (wid % p.colBlocks) * p.cols + c;
  var acc = 0.0;
  if (col < p.inner) {
    let base = o * p.n * p.inner + col;
    // max is idempotent, so the column's first element is a neutral start (n ≥ 1 is checked
    // on the host).
    if (OP == 1u) { acc = f32(x[base]); }
    for (var k = j; k < p.n; k += p.ks) {
      acc = combine(acc, f32(x[base + k * p.inner]));
    }
  }
  part[li] = acc;
  workgroupBarrier();
  for (var s = p.ks / 2u; s > 0u; s >>= 1u) {
    if (j < s) { part[li] = combine(part[li], part[li + s * p.cols]); }
    workgroupBarrier();
  }
  if (j == 0u && col < p.inner) {
    var r = part[li];
    if (OP == 2u) { r = r / f32(p.n); }
    y[o * p.inner + col] = T(r);
  }
}
