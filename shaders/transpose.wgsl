// y = x with its axes permuted: one output element per invocation (grid1d over x and y). The
// host merges axes that stay adjacent and drops size-1 axes, then passes, for each remaining
// output axis d, its size shape[d] and the input stride of the axis it comes from, stride[d].
alias T = f32;

struct Params {
  n: u32, rank: u32, _pad0: u32, _pad1: u32,
  // Entry d of the flattened vec4 arrays is [d / 4][d % 4] (uniform arrays need 16-byte strides).
  shape: array<vec4<u32>, 2>,
  stride: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

const WG: u32 = 256u;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= p.n) { return; }
  var rem = i;
  var src = 0u;
  for (var d = p.rank; d > 0u; d--) {
    let k = d - 1u;
    let size = p.shape[k / 4u][k % 4u];
    src += (rem % size) * p.stride[k / 4u][k % 4u];
    rem /= size;
  }
  y[i] = x[src];
}
