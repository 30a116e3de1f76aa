// Embedding lookup and its deterministic backward.
//
// `gather`: out[t, d] = table[ids[t], d], zeros for an id outside [0, V).
//
// Backward, dTable[v, d] = Σ dy[t, d] over the tokens t with ids[t] = v, in increasing t: the
// same order, so the same bits, on every run, and no float atomics (WGSL has none). The tokens
// are sorted by (id, t) with a bitonic network, which compares the same pairs whatever the data:
//   `sort_local`  builds (id, t) pairs (ids out of range get key 0xffffffff and sort last; so do
//                 the pads up to N, a power of two ≥ 512) and sorts each block of 512 in
//                 workgroup memory;
//   `sort_global` one compare-exchange step at distance j ≥ 512 of merge stage k, in memory;
//   `sort_merge`  the remaining steps j = 256 … 1 of merge stage k, per block of 512;
//   `accumulate`  one invocation per (v, d): binary-search v's run in the sorted pairs and sum
//                 its tokens' dy in order (v's without tokens get 0).
alias T = f32;

struct Params {
  tokens: u32, N: u32, j: u32, k: u32,
  D: u32, V: u32, _a: u32, _b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// entry `gather`
@group(0) @binding(1) var<storage, read> table: array<T>;
@group(0) @binding(2) var<storage, read> gatherIds: array<i32>;
@group(0) @binding(3) var<storage, read_write> gathered: array<T>;

// entry `sort_local`
@group(0) @binding(1) var<storage, read> sortIds: array<i32>;
@group(0) @binding(2) var<storage, read_write> initPairs: array<vec2<u32>>;

// entries `sort_global`, `sort_merge`
@group(0) @binding(1) var<storage, read_write> pairs: array<vec2<u32>>;

// entry `accumulate`
@group(0) @binding(1) var<storage, read> sorted: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> dy: array<T>;
@group(0) @binding(3) var<storage, read_write> dTable: array<T>;

const NONE: u32 = 0xffffffffu;
var<workgroup> tile: array<vec2<u32>, 512>;

fn flatWorkgroup(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.x + wg.y * nwg.x;
}

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
  let i = flatWorkgroup(wg, nwg) * 256u + li;
  if (i >= p.tokens * p.D) { return; }
  let t = i / p.D;
  let d = i % p.D;
  let id = gatherIds[t];
  if (id >= 0 && u32(id) < p.V) {
    gathered[i] = table[u32(id) * p.D + d];
  } else {
    gathered[i] = T(0.0);
  }
}

// (key, token) pairs in lexicographic order; tokens are distinct, so no two pairs are equal.
fn greater(a: vec2<u32>, b: vec2<u32>) -> bool {
  return a.x > b.x || (a.x == b.x && a.y > b.y);
}

// One compare-exchange of step j in stage k, on the block in `tile` that starts at `base`.
fn exchangeLocal(li: u32, j: u32, k: u32, base: u32) {
  let i = (li / j) * 2u * j + (li % j);
  let l = i + j;
  let ascending = ((base + i) & k) == 0u;
  let a = tile[i];
  let b = tile[l];
  if (greater(a, b) == ascending) {
    tile[i] = b;
    tile[l] = a;
  }
}

fn initPair(g: u32) -> vec2<u32> {
  if (g < p.tokens) {
    let id = sortIds[g];
    if (id >= 0 && u32(id) < p.V) { return vec2<u32>(u32(id), g); }
  }
  return vec2<u32>(NONE, g);
}

@compute @workgroup_size(256)
fn sort_local(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
  let base = flatWorkgroup(wg, nwg) * 512u;
  if (base >= p.N) { return; }
  tile[li] = initPair(base + li);
  tile[li + 256u] = initPair(base + li + 256u);
  workgroupBarrier();
  for (var k = 2u; k <= 512u; k <<= 1u) {
    for (var j = k >> 1u; j > 0u; j >>= 1u) {
      exchangeLocal(li, j, k, base);
      workgroupBarrier();
    }
  }
  initPairs[base + li] = tile[li];
  initPairs[base + li + 256u] = tile[li + 256u];
}

@compute @workgroup_size(256)
fn sort_global(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
  let t = flatWorkgroup(wg, nwg) * 256u + li;
  if (t >= p.N / 2u) { return; }
  let i = (t / p.j) * 2u * p.j + (t % p.j);
  let l = i + p.j;
  let ascending = (i & p.k) == 0u;
  let a = pairs[i];
  let b = pairs[l];
  if (greater(a, b) == ascending) {
    pairs[i] = b;
    pairs[l] = a;
  }
}

@compute @workgroup_size(256)
fn sort_merge(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
  let base = flatWorkgroup(wg, nwg) * 512u;
  if (base >= p.N) { return; }
  tile[li] = pairs[base + li];
  tile[li + 256u] = pairs[base + li + 256u];
  workgroupBarrier();
  for (var j = 256u; j > 0u; j >>= 1u) {
    exchangeLocal(li, j, p.k, base);
    workgroupBarrier();
  }
  pairs[base + li] = tile[li];
  pairs[base + li + 256u] = tile[li + 256u];
}

// The first position in sorted[0, tokens) whose key is ≥ v.
fn lowerBound(v: u32) -> u32 {
  var lo = 0u;
  var hi = p.tokens;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (sorted[mid].x < v) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}

@compute @workgroup_size(256)
fn accumulate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
  let i = flatWorkgroup(wg, nwg) * 256u + li;
  if (i >= p.V * p.D) { return; }
  let v = i / p.D;
  let d = i % p.D;
  let end = lowerBound(v + 1u);
  var acc = 0.0;
  for (var s = lowerBound(v); s < end; s++) {
    acc += f32(dy[sorted[s].y * p.D + d]);
  }
  dTable[i] = T(acc);
}
