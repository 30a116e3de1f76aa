// Backward of y = (x − mean)·rstd·gamma + beta over the last dimension (D), given the forward's
// per-row mean and rstd. One dispatch, two kinds of workgroup:
//   workgroup w < rows: dx of row w, with ĝ = dy·gamma and x̂ = (x − mean)·rstd,
//     dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂))
//   the next colBlocks·chunks workgroups: partial dgamma = Σ dy·x̂ and dbeta = Σ dy over the
//     rows [c·chunk, (c+1)·chunk) of 16 columns, written to gpart/bpart[c, col]; the caller sums
//     the chunks with shaders/colsum.wgsl when there is more than one.
// Every sum is a serial strided loop then a fixed tree (no atomics): the same bits on every run.
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

const WG: u32 = 256u;
var<workgroup> s1: array<f32, 256>;
var<workgroup> s2: array<f32, 256>;

fn rowGrad(r: u32, li: u32) {
  let base = r * p.D;
  let mu = mean[r];
  let rs = rstd[r];
  var a = 0.0;
  var c = 0.0;
  for (var j = li; j < p.D; j += WG) {
    let g = f32(dy[base + j]) * f32(gamma[j]);
    let xh = (f32(x[base + j]) - mu) * rs;
    a += g;
    c += g * xh;
  }
  s1[li] = a;
  s2[li] = c;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      s1[li] += s1[li + s];
      s2[li] += s2[li + s];
    }
    workgroupBarrier();
  }
  let invD = 1.0 / f32(p.D);
  let ma = s1[0] * invD;
  let mc = s2[0] * invD;
  for (var j = li; j < p.D; j += WG) {
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
    for (var r = r0 + lane; r < r1; r += 16u) {
      let d = f32(dy[r * p.D + col]);
      ag += d * ((f32(x[r * p.D + col]) - mean[r]) * rstd[r]);
      ab += d;
    }
  }
  s1[li] = ag;
  s2[li] = ab;
  workgroupBarrier();
  for (var s = 8u; s > 0u; s >>= 1u) {
    if (lane < s) {
      s1[li] += s1[li + s * 16u];
      s2[li] += s2[li + s * 16u];
    }
    workgroupBarrier();
  }
  if (lane == 0u && col < p.D) {
    gpart[ck * p.D + col] = T(s1[lx]);
    bpart[ck * p.D + col] = T(s2[lx]);
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let w = wg.x + wg.y * nwg.x;
  if (w < p.rows) {
    rowGrad(w, li);
    return;
  }
  let b = w - p.rows;
  if (b >= p.colBlocks * p.chunks) { return; }
  paramGrad(b, li);
}
