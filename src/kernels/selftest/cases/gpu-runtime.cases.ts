// The GPU runtime's own contract, run like the kernels in Node and in the Chromium worker:
// readable WGSL errors, limits refused before Dawn sees them, pipelines and buffers reused.
import { isHearthError } from '../../../core/errors.ts';
import { sizeClass } from '../../../gpu/buffer-pool.ts';
import { compileWgsl } from '../../../gpu/compile.ts';
import { getPipeline, pipelineBuilds } from '../../../gpu/pipeline-cache.ts';
import { grid1d, Recorder } from '../../../gpu/recorder.ts';
import { emptyTensor, readTensor, uploadTensor } from '../../../gpu/tensor.ts';
import { Usage } from '../../../gpu/usage.ts';
import { matmul } from '../../../kernels/matmul.ts';
import { assertRejects, type KernelCase } from '../harness.ts';

const COPY = `@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
override K: f32 = 1.0;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < arrayLength(&dst)) { dst[id.x] = src[id.x] * K; }
}`;

function expect(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

export const cases: KernelCase[] = [
  {
    name: 'runtime: a WGSL syntax error names shader, line, column and quotes the line',
    async run(ctx) {
      const code = 'struct P { a: u32 }\n\nfn main( {\n}\n';
      await assertRejects(
        () => compileWgsl(ctx.device, { label: 'job-42/kernel', code }),
        'wgsl/compile',
        ['"job-42/kernel"', 'line 3', 'column 10', 'fn main( {', '^'],
        'syntax error',
      );
    },
  },
  {
    name: 'runtime: a WGSL type error is reported with its position in details',
    async run(ctx) {
      const code = '@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = 1u;\n}\n';
      try {
        await compileWgsl(ctx.device, { label: 'typed', code });
        throw new Error('compiled a type error');
      } catch (e) {
        if (!isHearthError(e, 'wgsl/compile')) throw e;
        expect(e.details.line === 3, `line ${e.details.line}, expected 3`);
        expect(typeof e.details.column === 'number' && (e.details.column as number) > 0, 'no column');
        expect(Array.isArray(e.details.messages), 'no messages list');
      }
    },
  },
  {
    name: 'runtime: empty WGSL is refused with a clear error',
    async run(ctx) {
      await assertRejects(
        () => compileWgsl(ctx.device, { label: 'blank', code: '  \n' }),
        'wgsl/compile',
        ['empty'],
        'empty',
      );
    },
  },
  {
    name: 'runtime: a missing entry point fails as wgsl/pipeline, not an uncaptured error',
    async run(ctx) {
      await assertRejects(
        () => getPipeline(ctx.device, { label: 'copy', code: COPY, entryPoint: 'nope' }),
        'wgsl/pipeline',
        ['"copy"'],
        'bad entry point',
      );
    },
  },
  {
    name: 'runtime: pipelines are cached per device and keyed by their override constants',
    async run(ctx) {
      const before = pipelineBuilds(ctx.device);
      const p1 = await getPipeline(ctx.device, { label: 'copy', code: COPY, constants: { K: 2 } });
      const p2 = await getPipeline(ctx.device, { label: 'copy', code: COPY, constants: { K: 2 } });
      expect(p1 === p2, 'same spec built twice');
      const p3 = await getPipeline(ctx.device, { label: 'copy', code: COPY, constants: { K: 3 } });
      expect(p3 !== p1, 'different constants shared a pipeline');
      expect(
        pipelineBuilds(ctx.device) - before === 2,
        `built ${pipelineBuilds(ctx.device) - before}, expected 2`,
      );
      // and the specialisation really is applied
      const x = uploadTensor(ctx, new Float32Array([1, 2, 3]), [3], 'x');
      const y = emptyTensor(ctx, [3], 'f32', 'y');
      const rec = new Recorder(ctx, 'copy');
      rec.dispatch({ pipeline: p3, buffers: [x.buffer, y.buffer], workgroups: [1] });
      await rec.submit();
      const got = await readTensor(y);
      x.release();
      y.release();
      expect(got.join() === '3,6,9', `K=3 copy gave ${got.join()}`);
    },
  },
  {
    name: 'runtime: the buffer pool reuses buffers by size class',
    async run(ctx) {
      expect(
        sizeClass(1) === 256 && sizeClass(257) === 512 && sizeClass(1 << 20) === 1 << 20,
        'small classes',
      );
      expect(
        sizeClass((1 << 20) + 1) === (1 << 20) + (1 << 18),
        `class of 1 MiB+1 is ${sizeClass((1 << 20) + 1)}`,
      );
      const usage = Usage.STORAGE | Usage.COPY_DST;
      const a = ctx.pool.acquire(1000, usage, 'a');
      ctx.pool.release(a);
      const b = ctx.pool.acquire(900, usage, 'b');
      expect(a === b, 'a released buffer of the same class was not reused');
      expect(b.label === 'b', 'reused buffer kept its old label');
      ctx.pool.release(b);
    },
  },
  {
    name: 'runtime: a buffer over maxStorageBufferBindingSize is refused before reaching WebGPU',
    async run(ctx) {
      const limit = ctx.limits.maxStorageBufferBindingSize;
      const n = Math.floor(limit / 4) + 16;
      await assertRejects(
        async () => emptyTensor(ctx, [n], 'f32', 'huge'),
        'gpu/limit',
        ['"huge"', 'maxStorageBufferBindingSize', 'Split'],
        'huge tensor',
      );
    },
  },
  {
    name: 'runtime: a dispatch over maxComputeWorkgroupsPerDimension is refused; grid1d splits it',
    async run(ctx) {
      const max = ctx.limits.maxComputeWorkgroupsPerDimension;
      const pipeline = await getPipeline(ctx.device, { label: 'copy', code: COPY });
      const rec = new Recorder(ctx, 'too-wide');
      const x = emptyTensor(ctx, [4], 'f32', 'x');
      try {
        await assertRejects(
          async () => rec.dispatch({ pipeline, buffers: [x.buffer, x.buffer], workgroups: [max + 1] }),
          'gpu/limit',
          [String(max), 'per dimension'],
          'wide dispatch',
        );
      } finally {
        await rec.submit();
        x.release();
      }
      const [gx, gy] = grid1d(ctx, max * 3 + 1);
      expect(gx <= max && gy <= max && gx * gy >= max * 3 + 1, `grid1d gave ${gx}×${gy}`);
      await assertRejects(
        async () => grid1d(ctx, max * max + 1),
        'gpu/limit',
        ['dispatch grid'],
        'grid1d overflow',
      );
    },
  },
  {
    name: 'runtime: upload checks shape against data',
    async run(ctx) {
      await assertRejects(
        async () => uploadTensor(ctx, new Float32Array(5), [2, 3], 'x'),
        'tensor/shape',
        ['[2, 3]', '6 elements', 'has 5'],
        'bad upload',
      );
      await assertRejects(
        async () => emptyTensor(ctx, [2, -1], 'f32', 'neg'),
        'tensor/shape',
        ['invalid shape'],
        'neg dim',
      );
    },
  },
  {
    name: 'runtime: a released tensor cannot be used by a kernel',
    async run(ctx) {
      const a = uploadTensor(ctx, new Float32Array(4), [2, 2], 'a');
      a.release();
      const rec = new Recorder(ctx, 'released');
      await assertRejects(() => matmul(rec, a, a), 'input/invalid', ['already released'], 'released input');
      await rec.submit();
    },
  },
  {
    name: 'runtime: reshape is a view that shares bytes and leaves freeing to its owner',
    async run(ctx) {
      const a = uploadTensor(ctx, new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], 'a');
      const v = a.reshape([3, 2]);
      expect(v.buffer === a.buffer && v.isView, 'reshape copied');
      v.release();
      expect(!a.isReleased && ctx.pool.bytesInUse > 0, 'releasing the view freed the owner');
      const got = await readTensor(v);
      expect(got.join() === '1,2,3,4,5,6', `view read ${got.join()}`);
      await assertRejects(async () => a.reshape([4, 2]), 'tensor/shape', ['6 elements vs 8'], 'bad reshape');
      a.release();
    },
  },
];
