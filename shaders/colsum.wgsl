// Column sums of a row-major [rows, cols] matrix, in a fixed order: the same bits on every run.
// Workgroup (bx, by, c) sums rows [c·chunk, min((c+1)·chunk, rows)) of columns 16·b .. 16·b+15
// (b = bx + by·num_workgroups.x): each of 4 lanes per column adds every 4th row in order, then
// one lane adds the 4 lane sums in order after one barrier (a 256-invocation workgroup and a
// barrier tree cost more than the sums on a CPU adapter). dst[c·cols + col] gets the chunk's sum; with
// more than one chunk the caller sums the partials again with this same kernel.
alias T = f32;

struct Params { rows: u32, cols: u32, chunk: u32, colBlocks: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<T>;
@group(0) @binding(2) var<storage, read_write> dst: array<T>;

const LANES: u32 = 4u; // row lanes per column; a workgroup is 16 columns × LANES
var<workgroup> part: array<f32, 64>; // [lane][column]: part[lane * 16 + column]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let block = wg.x + wg.y * nwg.x;
  if (block >= p.colBlocks) { return; }
  let lx = li % 16u;
  let lane = li / 16u;
  let col = block * 16u + lx;
  let r0 = wg.z * p.chunk;
  let r1 = min(r0 + p.chunk, p.rows);
  var acc = 0.0;
  if (col < p.cols) {
    for (var r = r0 + lane; r < r1; r += LANES) { acc += f32(src[r * p.cols + col]); }
  }
  part[li] = acc;
  workgroupBarrier();
  if (lane == 0u && col < p.cols) {
    var total = 0.0;
    for (var k = 0u; k < LANES; k++) { total += part[lx + k * 16u]; }
    dst[wg.z * p.cols + col] = T(total);
  }
}
