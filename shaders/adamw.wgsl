// One AdamW step (Loshchilov & Hutter, decoupled weight decay), in place, one invocation per
// parameter, in the form PyTorch's AdamW uses:
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   θ ← θ·(1 − lr·λ) − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
// The host computes the step's scalars (decay, step size, bias corrections) in double precision.
struct Params {
  n: u32, beta1: f32, oneMinusBeta1: f32, beta2: f32,
  oneMinusBeta2: f32, eps: f32, decay: f32, stepSize: f32,
  invSqrtBc2: f32, _a: u32, _b: u32, _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * 256u + li;
  if (i >= p.n) { return; }
  let g = grads[i];
  let m = p.beta1 * m1[i] + p.oneMinusBeta1 * g;
  let v = p.beta2 * m2[i] + p.oneMinusBeta2 * (g * g);
  m1[i] = m;
  m2[i] = v;
  let denom = sqrt(v) * p.invSqrtBc2 + p.eps;
  params[i] = params[i] * p.decay - p.stepSize * (m / denom);
}
