// Backward of y = (x − mean)·rstd·gamma + beta over the last dimension (D), given the forward's
// per-row mean and rstd. One dispatch, two kinds of workgroup:
//   the first rowGroups workgroups: dx of WG / LANES rows each, LANES invocations ("lanes") per
//     row as in layernorm.wgsl (LANES a power of two the host picks for ~64 elements a lane),
//     with ĝ = dy·gamma and x̂ = (x − mean)·rstd,
//       dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂))
//   the next colBlocks·chunks workgroups: partial dgamma = Σ dy·x̂ and dbeta = Σ dy over the
//     rows [c·chunk, (c+1)·chunk) of 16 columns, 4 row lanes each, written to gpart/bpart[c, col];
//     the caller sums the chunks with shaders/colsum.wgsl when there is more than one.
// Every sum is a serial strided loop then a fixed order (no atomics): the same bits on every run.
// Small rows used to take a 256-invocation workgroup each and an 8-step barrier tree: most of a
// training step's time on a CPU adapter for D = 32.
alias T = f32;

struct Params {
  rows: u32, D: u32, chunk: u32, colBlocks: u32,
  chunks: u32, _a: u32, _b: u32, _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> gamma: array<T>;
@group(0) @binding(3) var<storage, read> dy: array<T>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<T>;
@group(0) @binding(7) var<storage, read_write> gpart: array<T>;
@group(0) @binding(8) var<storage, read_write> bpart: array<T>;

const WG: u32 = 64u;
// Invocations per row in the dx workgroups: a power of two ≤ WG.
override LANES: u32 = 64u;
var<workgroup> s1: array<f32, WG>;
var<workgroup> s2: array<f32, WG>;

fn rowGrad(w: u32, li: u32) {
  let r = w * (WG / LANES) + li / LANES;
  let lane = li % LANES;
  // Rows past the end (last workgroup) still reach the barrier, with no elements.
  let n = select(0u, p.D, r < p.rows);
  let base = r * p.D;
  var mu = 0.0;
  var rs = 0.0;
  if (n > 0u) {
    mu = mean[r];
    rs = rstd[r];
  }
  var a = 0.0;
  var c = 0.0;
  for (var j = lane; j < n; j += LANES) {
    let g = f32(dy[base + j]) * f32(gamma[j]);
    let xh = (f32(x[base + j]) - mu) * rs;
    a += g;
    c += g * xh;
  }
  s1[li] = a;
  s2[li] = c;
  workgroupBarrier();
  let first = li - lane;
  var ta = 0.0;
  var tc = 0.0;
  for (var k = 0u; k < LANES; k++) {
    ta += s1[first + k];
    tc += s2[first + k];
  }
  let invD = 1.0 / f32(p.D);
  let ma = ta * invD;
  let mc = tc * invD;
  for (var j = lane; j < n; j += LANES) {
    let g = f32(dy[base + j]) * f32(gamma[j]);
    let xh = (f32(x[base + j]) - mu) * rs;
    dx[base + j] = T(rs * (g - ma - xh * mc));
  }
}

fn paramGrad(b: u32, li: u32) {
  let lx = li % 16u;
  let lane = li / 16u;
  let col = (b % p.colBlocks) * 16u + lx;
  let ck = b / p.colBlocks;
  let r0 = ck * p.chunk;
  let r1 = min(r0 + p.chunk, p.rows);
  var ag = 0.0;
  var ab = 0.0;
  if (col < p.D) {
    for (var r = r0 + lane; r < r1; r += WG / 16u) {
      let d = f32(dy[r * p.D + col]);
      ag += d * ((f32(x[r * p.D + col]) - mean[r]) * rstd[r]);
      ab += d;
    }
  }
  s1[li] = ag;
  s2[li] = ab;
  workgroupBarrier();
  if (lane == 0u && col < p.D) {
    var tg = 0.0;
    var tb = 0.0;
    for (var k = 0u; k < WG / 16u; k++) {
      tg += s1[lx + k * 16u];
      tb += s2[lx + k * 16u];
    }
    gpart[ck * p.D + col] = T(tg);
    bpart[ck * p.D + col] = T(tb);
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let w = wg.x + wg.y * nwg.x;
  let rowGroups = (p.rows + WG / LANES - 1u) / (WG / LANES);
  if (w < rowGroups) {
    rowGrad(w, li);
    return;
  }
  let b = w - rowGroups;
  if (b >= p.colBlocks * p.chunks) { return; }
  paramGrad(b, li);
}
