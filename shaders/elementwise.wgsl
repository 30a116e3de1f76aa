// out[i] = OP(a[i], b[i mod nb]): one element per invocation, workgroups spread over x and y
// (grid1d). b broadcasts along a's leading dimensions when nb < n (b is a trailing part of a).
// Unary ops bind a in b's place and never read it. Arithmetic is f32 whatever T is.
alias T = f32;

// 0 add, 1 mul, 2 scale, 3 relu, 4 gelu (tanh form), 5 silu
override OP: u32 = 0u;

struct Params {
  n: u32, nb: u32, s: f32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> b: array<T>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;

const WG: u32 = 256u;

// The same gelu as matmul's epilogue, clamp included (tanh of a huge argument is NaN on some GPUs).
fn gelu(x: f32) -> f32 {
  let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
  return 0.5 * x * (1.0 + tanh(u));
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= p.n) { return; }
  let x = f32(a[i]);
  var y: f32;
  switch (OP) {
    case 0u: { y = x + f32(b[i % p.nb]); }
    case 1u: { y = x * f32(b[i % p.nb]); }
    case 2u: { y = x * p.s; }
    case 3u: { y = max(x, 0.0); }
    case 4u: { y = gelu(x); }
    case 5u: { y = x / (1.0 + exp(-x)); }
    default: { y = x; }
  }
  out[i] = T(y);
}
