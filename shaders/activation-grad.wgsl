// dx = dy · act'(x), elementwise, for the activations of shaders/matmul.wgsl; x is the
// pre-activation input. One invocation per element, 256 per workgroup, on a 2-D grid of
// workgroups (grid1d) so that more than 65535 workgroups fit.
alias T = f32;

// 1 relu, 2 gelu (tanh form, its argument clamped to ±15 exactly as in matmul.wgsl), 3 silu
override ACT: u32 = 1u;

struct Params { n: u32, _a: u32, _b: u32, _c: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> dy: array<T>;
@group(0) @binding(3) var<storage, read_write> dx: array<T>;

const GELU_C: f32 = 0.7978845608028654; // sqrt(2/π)
const GELU_A: f32 = 0.044715;

fn dact(v: f32) -> f32 {
  switch (ACT) {
    // relu'(0) is taken as 0, as PyTorch does.
    case 1u: { return select(0.0, 1.0, v > 0.0); }
    case 2u: {
      let inner = GELU_C * (v + GELU_A * v * v * v);
      let u = clamp(inner, -15.0, 15.0);
      // The forward clamps tanh's argument, which is flat outside ±15: no gradient flows there.
      let du = select(0.0, GELU_C * (1.0 + 3.0 * GELU_A * v * v), abs(inner) < 15.0);
      // 1 + tanh(u) and 1 − tanh²(u) from e = exp(−2|u|), so that neither loses its digits to
      // cancellation where tanh(u) is close to ±1 (1 − t·t would keep none of them).
      let e = exp(-2.0 * abs(u));
      let r = 1.0 / (1.0 + e);
      let onePlusT = select(2.0 * e * r, 2.0 * r, u >= 0.0);
      let sech2 = 4.0 * e * r * r;
      return 0.5 * onePlusT + 0.5 * v * sech2 * du;
    }
    case 3u: {
      let s = 1.0 / (1.0 + exp(-v));
      return s * (1.0 + v * (1.0 - s));
    }
    default: { return 1.0; }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * 256u + li;
  if (i >= p.n) { return; }
  dx[i] = T(f32(dy[i]) * dact(f32(x[i])));
}
