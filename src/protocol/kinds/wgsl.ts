// The `wgsl` job kind on the protocol layer: a researcher's WGSL compute shader. A shard is either
// one dispatch over its bindings (the original form) or a short program: named buffers that
// persist across passes, and passes — each an entry point, the buffers bound to its slots and a
// dispatch — run in order, with groups of passes repeated (ping-pong pairs: pass A reads `u`
// writes `v`, pass B the other way, repeated n times). Both forms are checked here against the
// shader's own declarations (wgsl-reflect.ts) so the hub can refuse a mismatch at submit; the
// worker adds its device's limits.
import { HearthError } from '../../core/errors.ts';
import { isSha256Hex } from '../../core/hash.ts';
import type { DType } from '../../core/tensor.ts';
import {
  type ExpectedOutput,
  expectedOutputs,
  type ManifestBase,
  manifestError,
  type TensorBlob,
  tensorBlob,
} from '../manifest.ts';
import {
  type HostTensor,
  parseDType,
  parseHostTensor,
  parseShape,
  SHARD_LIMITS,
  tensorBytes,
} from '../shard.ts';
import { arr, bytes, int, obj, oneOf, onlyKeys, str } from '../validate.ts';
import { type BlobGetter, ownBuffer, type ShardContext, tensorOf } from '../work.ts';
import type { NamedTensor, ProtocolKind, ShardHead } from './kind.ts';

/** Bounds on a WGSL program, checked before anything runs (DESIGN.md invariant 7). */
export const WGSL_PROGRAM_LIMITS = {
  /** Named buffers of one program. */
  maxBuffers: SHARD_LIMITS.maxTensors,
  /** Steps of a program (a pass, or a repeated group). */
  maxSteps: 64,
  /** Passes in one repeated group. */
  maxGroupPasses: 16,
  /** Times one group may repeat. */
  maxRepeat: 100_000,
  /** Dispatches of the whole program, repeats expanded. */
  maxDispatches: 200_000,
  /** Slots bound by one pass. */
  maxBindings: 32,
} as const;

const ENTRY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

// ---- the manifest and the work (tensors by SHA-256) ----

export type WgslBindingSpec =
  | { readonly binding: number; readonly role: 'input'; readonly name: string; readonly tensor: TensorBlob }
  | {
      readonly binding: number;
      readonly role: 'output';
      readonly name: string;
      readonly dtype: DType;
      readonly shape: readonly number[];
    }
  | { readonly binding: number; readonly role: 'uniform'; readonly name: string; readonly sha256: string };

/** One dispatch of the job's kernel over its bindings: the original shard form. */
export interface WgslDispatchSpec {
  readonly bindings: readonly WgslBindingSpec[];
  readonly dispatch: readonly [number, number, number];
}

/**
 * A buffer of a program: an input (its bytes from a blob), an output (starts zeroed, returned),
 * scratch (starts zeroed, not returned) or a uniform (its bytes from a blob). Storage buffers may
 * be bound read-only in one pass and read-write in another.
 */
export type WgslBufferSpec =
  | { readonly name: string; readonly role: 'input'; readonly tensor: TensorBlob }
  | {
      readonly name: string;
      readonly role: 'output' | 'scratch';
      readonly dtype: DType;
      readonly shape: readonly number[];
    }
  | { readonly name: string; readonly role: 'uniform'; readonly sha256: string };

/** One dispatch of an entry point with buffers bound to its @group(0) slots. */
export interface WgslPass {
  readonly entryPoint: string;
  readonly bind: readonly { readonly binding: number; readonly buffer: string }[];
  readonly dispatch: readonly [number, number, number];
}

/** A step of a program: one pass, or a group of passes run `repeat` times in order. */
export type WgslStep = WgslPass | { readonly repeat: number; readonly passes: readonly WgslPass[] };

/** A shard that is a short program over buffers that persist across its passes. */
export interface WgslProgramSpec {
  readonly buffers: readonly WgslBufferSpec[];
  readonly program: readonly WgslStep[];
}

export type WgslShardSpec = WgslDispatchSpec | WgslProgramSpec;

export interface WgslManifest extends ManifestBase {
  readonly kind: 'wgsl';
  readonly source: string;
  /** The entry point of dispatch-form shards (default "main"); program passes name their own. */
  readonly entryPoint?: string;
  readonly shards: readonly WgslShardSpec[];
  readonly honeypots?: readonly WgslHoneypot[];
  /** FLOPs of one shard, as the kernel's author declares them. Credit = flopsPerShard × creditRate. */
  readonly flopsPerShard: number;
}

export type WgslHoneypot = WgslShardSpec & { readonly expected: readonly ExpectedOutput[] };

/** A WGSL shard's work: one shard spec (the lease carries the kernel beside it). */
export interface WgslWork {
  readonly kind: 'wgsl';
  readonly spec: WgslShardSpec;
}

// ---- the worker's shard (with bytes) ----

export interface WgslInputBinding {
  readonly binding: number;
  readonly role: 'input';
  readonly name: string;
  readonly tensor: HostTensor;
}
export interface WgslOutputBinding {
  readonly binding: number;
  readonly role: 'output';
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}
export interface WgslUniformBinding {
  readonly binding: number;
  readonly role: 'uniform';
  readonly name: string;
  /** The uniform struct's bytes, laid out as the shader declares it. */
  readonly data: ArrayBuffer;
}
export type WgslBinding = WgslInputBinding | WgslOutputBinding | WgslUniformBinding;

export type WgslBuffer =
  | { readonly name: string; readonly role: 'input'; readonly tensor: HostTensor }
  | {
      readonly name: string;
      readonly role: 'output' | 'scratch';
      readonly dtype: DType;
      readonly shape: readonly number[];
    }
  | { readonly name: string; readonly role: 'uniform'; readonly data: ArrayBuffer };

interface WgslShardBase {
  readonly v: 1;
  readonly kind: 'wgsl';
  readonly id: string;
  readonly job: string;
  readonly source: string;
  readonly budgetMs?: number;
}

/**
 * A researcher's WGSL compute shader run once over a dispatch grid. Bindings are all in
 * @group(0): inputs as `var<storage, read>`, outputs as `var<storage, read_write>`, uniforms
 * as `var<uniform>`.
 */
export interface WgslDispatchShard extends WgslShardBase {
  readonly entryPoint?: string;
  readonly bindings: readonly WgslBinding[];
  readonly dispatch: readonly [number, number, number];
}

/** A WGSL program with bytes: buffers and the passes over them. */
export interface WgslProgramShard extends WgslShardBase {
  readonly buffers: readonly WgslBuffer[];
  readonly program: readonly WgslStep[];
}

export type WgslShard = WgslDispatchShard | WgslProgramShard;

export const isProgram = <D extends object, P extends { readonly program: unknown }>(s: D | P): s is P =>
  'program' in s;

// ---- parsers ----

function dispatchOf(v: unknown, path: string, max: number): [number, number, number] {
  const d = arr(v, path, 3);
  if (d.length !== 3) throw manifestError(path, 'expected [x, y, z] workgroup counts.');
  return d.map((x, i) => int(x, `${path}[${i}]`, 1, max)) as [number, number, number];
}

function outputShape(dtype: DType, shape: number[], path: string): void {
  if (tensorBytes(dtype, shape) > SHARD_LIMITS.maxTensorBytes) {
    throw manifestError(
      path,
      `${dtype}[${shape.join(', ')}] is over the ${SHARD_LIMITS.maxTensorBytes}-byte limit.`,
    );
  }
}

/**
 * The steps of a program: passes naming buffers that exist, groups within their bounds, the whole
 * program within WGSL_PROGRAM_LIMITS.maxDispatches. `maxDispatch` bounds one dimension.
 */
function parseSteps(v: unknown, path: string, names: ReadonlySet<string>, maxDispatch: number): WgslStep[] {
  const list = arr(v, path, WGSL_PROGRAM_LIMITS.maxSteps);
  if (list.length === 0) throw manifestError(path, 'a program needs at least one pass.');
  const pass = (x: unknown, p: string): WgslPass => {
    const o = obj(x, p);
    onlyKeys(o, p, ['entryPoint', 'bind', 'dispatch']);
    const entryPoint = str(o.entryPoint, `${p}.entryPoint`, { max: 128, pattern: ENTRY });
    const seen = new Set<number>();
    const bind = arr(o.bind, `${p}.bind`, WGSL_PROGRAM_LIMITS.maxBindings).map((b, i) => {
      const bp = `${p}.bind[${i}]`;
      const bo = obj(b, bp);
      onlyKeys(bo, bp, ['binding', 'buffer']);
      const binding = int(bo.binding, `${bp}.binding`, 0, 1023);
      if (seen.has(binding)) throw manifestError(`${p}.bind`, `slot ${binding} is bound twice.`);
      seen.add(binding);
      const buffer = str(bo.buffer, `${bp}.buffer`, { max: 64 });
      if (!names.has(buffer))
        throw manifestError(`${bp}.buffer`, `"${buffer}" is not one of the shard's buffers.`);
      return { binding, buffer };
    });
    return { entryPoint, bind, dispatch: dispatchOf(o.dispatch, `${p}.dispatch`, maxDispatch) };
  };
  let dispatches = 0;
  const steps = list.map((s, i): WgslStep => {
    const p = `${path}[${i}]`;
    const o = obj(s, p);
    if (o.repeat === undefined) {
      dispatches += 1;
      return pass(o, p);
    }
    onlyKeys(o, p, ['repeat', 'passes']);
    const repeat = int(o.repeat, `${p}.repeat`, 1, WGSL_PROGRAM_LIMITS.maxRepeat);
    const passes = arr(o.passes, `${p}.passes`, WGSL_PROGRAM_LIMITS.maxGroupPasses).map((x, j) =>
      pass(x, `${p}.passes[${j}]`),
    );
    if (passes.length === 0) throw manifestError(`${p}.passes`, 'a repeated group needs at least one pass.');
    dispatches += repeat * passes.length;
    return { repeat, passes };
  });
  if (dispatches > WGSL_PROGRAM_LIMITS.maxDispatches) {
    throw manifestError(
      path,
      `the program runs ${dispatches} dispatches, over the ${WGSL_PROGRAM_LIMITS.maxDispatches} a shard may run; split it into more shards.`,
    );
  }
  return steps;
}

function bufferNames<T extends { name: string }>(list: T[], path: string): Set<string> {
  const names = new Set<string>();
  for (const b of list) {
    if (names.has(b.name)) throw manifestError(path, `buffer "${b.name}" is listed twice.`);
    names.add(b.name);
  }
  if (!list.some((b) => (b as { role?: string }).role === 'output')) {
    throw manifestError(path, 'a WGSL shard needs at least one output buffer.');
  }
  return names;
}

/** A program shard spec (tensors by hash), from a manifest or a lease. */
function parseProgramSpec(o: Readonly<Record<string, unknown>>, path: string): WgslProgramSpec {
  const buffers = arr(o.buffers, `${path}.buffers`, WGSL_PROGRAM_LIMITS.maxBuffers).map(
    (b, i): WgslBufferSpec => {
      const p = `${path}.buffers[${i}]`;
      const bo = obj(b, p);
      const role = oneOf(bo.role, `${p}.role`, ['input', 'output', 'scratch', 'uniform'] as const);
      const name = str(bo.name, `${p}.name`, { max: 64, pattern: NAME });
      if (role === 'input') {
        onlyKeys(bo, p, ['name', 'role', 'tensor']);
        return { name, role, tensor: tensorBlob(bo.tensor, `${p}.tensor`) };
      }
      if (role === 'uniform') {
        onlyKeys(bo, p, ['name', 'role', 'sha256']);
        if (!isSha256Hex(bo.sha256))
          throw manifestError(`${p}.sha256`, 'expected a SHA-256 as 64 lowercase hex digits.');
        return { name, role, sha256: bo.sha256 };
      }
      onlyKeys(bo, p, ['name', 'role', 'dtype', 'shape']);
      const dtype = parseDType(bo.dtype, `${p}.dtype`);
      const shape = nonEmptyShape(bo.shape, `${p}.shape`);
      outputShape(dtype, shape, p);
      return { name, role, dtype, shape };
    },
  );
  const names = bufferNames(buffers, `${path}.buffers`);
  return { buffers, program: parseSteps(o.program, `${path}.program`, names, 65535) };
}

/** A shape with at least one element: a zero-size buffer cannot be bound. */
function nonEmptyShape(v: unknown, path: string): number[] {
  const shape = parseShape(v, path);
  if (shape.some((d) => d === 0)) {
    throw manifestError(path, `[${shape.join(', ')}] has no elements; a WGSL buffer needs at least one.`);
  }
  return shape;
}

/** A dispatch-form binding list: each slot once, at least one output (manifest, lease and shard alike). */
function checkBindingList(bindings: readonly { binding: number; role: string }[], path: string): void {
  const seen = new Set<number>();
  for (const b of bindings) {
    if (seen.has(b.binding)) throw manifestError(path, `binding ${b.binding} is listed twice.`);
    seen.add(b.binding);
  }
  if (!bindings.some((b) => b.role === 'output')) {
    throw manifestError(path, 'a WGSL shard needs at least one output binding.');
  }
}

/** Checks one WGSL shard spec, either form (also used for the work a lease carries). */
export function parseWgslShardSpec(
  v: unknown,
  path: string,
  extraKeys: readonly string[] = [],
): WgslShardSpec {
  const o = obj(v, path);
  if (o.program !== undefined || o.buffers !== undefined) {
    onlyKeys(o, path, ['buffers', 'program', ...extraKeys]);
    return parseProgramSpec(o, path);
  }
  onlyKeys(o, path, ['bindings', 'dispatch', ...extraKeys]);
  const bindings = arr(o.bindings, `${path}.bindings`, SHARD_LIMITS.maxTensors).map(
    (b, i): WgslBindingSpec => {
      const p = `${path}.bindings[${i}]`;
      const bo = obj(b, p);
      const role = oneOf(bo.role, `${p}.role`, ['input', 'output', 'uniform'] as const);
      const binding = int(bo.binding, `${p}.binding`, 0, 1023);
      const name = str(bo.name, `${p}.name`, { max: 128 });
      if (role === 'input') {
        onlyKeys(bo, p, ['binding', 'role', 'name', 'tensor']);
        return { binding, role, name, tensor: tensorBlob(bo.tensor, `${p}.tensor`) };
      }
      if (role === 'output') {
        onlyKeys(bo, p, ['binding', 'role', 'name', 'dtype', 'shape']);
        const dtype = parseDType(bo.dtype, `${p}.dtype`);
        const shape = nonEmptyShape(bo.shape, `${p}.shape`);
        outputShape(dtype, shape, p);
        return { binding, role, name, dtype, shape };
      }
      onlyKeys(bo, p, ['binding', 'role', 'name', 'sha256']);
      if (!isSha256Hex(bo.sha256))
        throw manifestError(`${p}.sha256`, 'expected a SHA-256 as 64 lowercase hex digits.');
      return { binding, role, name, sha256: bo.sha256 };
    },
  );
  checkBindingList(bindings, `${path}.bindings`);
  return { bindings, dispatch: dispatchOf(o.dispatch, `${path}.dispatch`, 65535) };
}

function parseManifest(
  o: Readonly<Record<string, unknown>>,
  base: ManifestBase,
  hp: readonly unknown[] | undefined,
  declaredFlops: number | undefined,
): WgslManifest {
  const source = str(o.source, 'manifest.source', { max: SHARD_LIMITS.maxSourceChars });
  const entryPoint =
    o.entryPoint === undefined
      ? undefined
      : str(o.entryPoint, 'manifest.entryPoint', { max: 128, pattern: ENTRY });
  // parseManifestBase requires it for this kind (flopsRequired): a WGSL kernel's work cannot be counted.
  if (declaredFlops === undefined) {
    throw manifestError('manifest.flopsPerShard', 'a WGSL job must declare the FLOPs of one shard.');
  }
  const list = arr(o.shards, 'manifest.shards', 100_000);
  if (list.length === 0) throw manifestError('manifest.shards', 'a WGSL job needs at least one shard.');
  const shards = list.map((s, i) => parseWgslShardSpec(s, `manifest.shards[${i}]`));
  const honeypots = hp?.map((h, i): WgslHoneypot => {
    const p = `manifest.honeypots[${i}]`;
    const spec = parseWgslShardSpec(h, p, ['expected']);
    return { ...spec, expected: expectedOutputs(obj(h, p).expected, `${p}.expected`) };
  });
  return {
    ...base,
    kind: 'wgsl',
    source,
    ...(entryPoint ? { entryPoint } : {}),
    shards,
    ...(honeypots ? { honeypots } : {}),
    flopsPerShard: declaredFlops,
  };
}

/** The blobs of one shard spec. */
function specBlobs(spec: WgslShardSpec): string[] {
  if (isProgram<WgslDispatchSpec, WgslProgramSpec>(spec)) {
    return spec.buffers.flatMap((b) =>
      b.role === 'input' ? [b.tensor.sha256] : b.role === 'uniform' ? [b.sha256] : [],
    );
  }
  return spec.bindings.flatMap((b) =>
    b.role === 'input' ? [b.tensor.sha256] : b.role === 'uniform' ? [b.sha256] : [],
  );
}

function specTensors(spec: WgslShardSpec, path: string): NamedTensor[] {
  if (isProgram<WgslDispatchSpec, WgslProgramSpec>(spec)) {
    return spec.buffers.flatMap((b, i) =>
      b.role === 'input' ? [{ path: `${path}.buffers[${i}].tensor`, tensor: b.tensor }] : [],
    );
  }
  return spec.bindings.flatMap((b, i) =>
    b.role === 'input' ? [{ path: `${path}.bindings[${i}].tensor`, tensor: b.tensor }] : [],
  );
}

/** The outputs a shard spec returns: name, dtype and shape (the hub checks results against them). */
export function specOutputs(spec: WgslShardSpec): { name: string; dtype: DType; shape: readonly number[] }[] {
  const list: readonly (WgslBindingSpec | WgslBufferSpec)[] = isProgram<WgslDispatchSpec, WgslProgramSpec>(
    spec,
  )
    ? spec.buffers
    : spec.bindings;
  return list.flatMap((b) => (b.role === 'output' ? [{ name: b.name, dtype: b.dtype, shape: b.shape }] : []));
}

// ---- worker shards ----

function uniformData(v: unknown, path: string): ArrayBuffer {
  const data = bytes(v, path, SHARD_LIMITS.maxUniformBytes);
  if (data.byteLength === 0 || data.byteLength % 4 !== 0) {
    throw manifestError(path, `uniform bytes must be a non-zero multiple of 4, got ${data.byteLength}.`);
  }
  return data;
}

function parseBinding(v: unknown, path: string): WgslBinding {
  const o = obj(v, path);
  const role = oneOf(o.role, `${path}.role`, ['input', 'output', 'uniform'] as const);
  const binding = int(o.binding, `${path}.binding`, 0, 1023);
  const name = str(o.name, `${path}.name`, { max: 128 });
  if (role === 'input') {
    onlyKeys(o, path, ['binding', 'role', 'name', 'tensor']);
    return { binding, role, name, tensor: parseHostTensor(o.tensor, `${path}.tensor`) };
  }
  if (role === 'output') {
    onlyKeys(o, path, ['binding', 'role', 'name', 'dtype', 'shape']);
    const dtype = parseDType(o.dtype, `${path}.dtype`);
    const shape = parseShape(o.shape, `${path}.shape`);
    if (tensorBytes(dtype, shape) > SHARD_LIMITS.maxTensorBytes) {
      throw manifestError(path, `output is over the ${SHARD_LIMITS.maxTensorBytes}-byte limit.`);
    }
    return { binding, role, name, dtype, shape };
  }
  onlyKeys(o, path, ['binding', 'role', 'name', 'data']);
  return { binding, role: 'uniform', name, data: uniformData(o.data, `${path}.data`) };
}

function parseShard(o: Readonly<Record<string, unknown>>, head: ShardHead): WgslShard {
  const source = str(o.source, 'shard.source', { max: SHARD_LIMITS.maxSourceChars });
  if (o.program !== undefined || o.buffers !== undefined) {
    onlyKeys(o, 'shard', ['v', 'kind', 'id', 'job', 'source', 'buffers', 'program', 'budgetMs']);
    const buffers = arr(o.buffers, 'shard.buffers', WGSL_PROGRAM_LIMITS.maxBuffers).map(
      (b, i): WgslBuffer => {
        const p = `shard.buffers[${i}]`;
        const bo = obj(b, p);
        const role = oneOf(bo.role, `${p}.role`, ['input', 'output', 'scratch', 'uniform'] as const);
        const name = str(bo.name, `${p}.name`, { max: 64, pattern: NAME });
        if (role === 'input') {
          onlyKeys(bo, p, ['name', 'role', 'tensor']);
          return { name, role, tensor: parseHostTensor(bo.tensor, `${p}.tensor`) };
        }
        if (role === 'uniform') {
          onlyKeys(bo, p, ['name', 'role', 'data']);
          return { name, role, data: uniformData(bo.data, `${p}.data`) };
        }
        onlyKeys(bo, p, ['name', 'role', 'dtype', 'shape']);
        const dtype = parseDType(bo.dtype, `${p}.dtype`);
        const shape = nonEmptyShape(bo.shape, `${p}.shape`);
        outputShape(dtype, shape, p);
        return { name, role, dtype, shape };
      },
    );
    const names = bufferNames(buffers, 'shard.buffers');
    return {
      ...head,
      kind: 'wgsl',
      source,
      buffers,
      program: parseSteps(o.program, 'shard.program', names, 2 ** 31 - 1),
    };
  }
  onlyKeys(o, 'shard', [
    'v',
    'kind',
    'id',
    'job',
    'source',
    'entryPoint',
    'bindings',
    'dispatch',
    'budgetMs',
  ]);
  const entryPoint =
    o.entryPoint === undefined
      ? undefined
      : str(o.entryPoint, 'shard.entryPoint', { max: 128, pattern: ENTRY });
  const bindings = arr(o.bindings, 'shard.bindings', SHARD_LIMITS.maxTensors).map((b, i) =>
    parseBinding(b, `shard.bindings[${i}]`),
  );
  checkBindingList(bindings, 'shard.bindings');
  return {
    ...head,
    kind: 'wgsl',
    source,
    ...(entryPoint ? { entryPoint } : {}),
    bindings,
    dispatch: dispatchOf(o.dispatch, 'shard.dispatch', 2 ** 31 - 1),
  };
}

async function shardFromWork(work: WgslWork, ctx: ShardContext, blobs: BlobGetter): Promise<WgslShard> {
  if (!ctx.kernel) {
    throw new HearthError('input/invalid', 'kernel: WGSL work needs its kernel source.', {
      details: { path: 'kernel' },
    });
  }
  const head = {
    v: 1 as const,
    kind: 'wgsl' as const,
    id: ctx.shard,
    job: ctx.job,
    source: ctx.kernel.source,
    ...(ctx.budgetMs === undefined ? {} : { budgetMs: ctx.budgetMs }),
  };
  const spec = work.spec;
  if (isProgram<WgslDispatchSpec, WgslProgramSpec>(spec)) {
    const buffers: WgslBuffer[] = [];
    for (const [i, b] of spec.buffers.entries()) {
      const path = `work.spec.buffers[${i}]`;
      if (b.role === 'input')
        buffers.push({ name: b.name, role: 'input', tensor: await tensorOf(b.tensor, blobs, path) });
      else if (b.role === 'uniform')
        buffers.push({ name: b.name, role: 'uniform', data: ownBuffer(await blobs.get(b.sha256)) });
      else buffers.push({ name: b.name, role: b.role, dtype: b.dtype, shape: [...b.shape] });
    }
    return { ...head, buffers, program: spec.program };
  }
  const bindings: WgslBinding[] = [];
  for (const b of spec.bindings) {
    const path = `work.spec.bindings[${b.binding}]`;
    if (b.role === 'input') {
      bindings.push({
        binding: b.binding,
        role: 'input',
        name: b.name,
        tensor: await tensorOf(b.tensor, blobs, path),
      });
    } else if (b.role === 'uniform') {
      bindings.push({
        binding: b.binding,
        role: 'uniform',
        name: b.name,
        data: ownBuffer(await blobs.get(b.sha256)),
      });
    } else {
      bindings.push({
        binding: b.binding,
        role: 'output',
        name: b.name,
        dtype: b.dtype,
        shape: [...b.shape],
      });
    }
  }
  return {
    ...head,
    ...(ctx.kernel.entryPoint ? { entryPoint: ctx.kernel.entryPoint } : {}),
    bindings,
    dispatch: [...spec.dispatch] as [number, number, number],
  };
}

/** The `wgsl` kind (registered in ./index.ts). */
export const wgslKind: ProtocolKind<WgslManifest, WgslWork, WgslShard> = {
  kind: 'wgsl',
  manifestKeys: ['source', 'entryPoint', 'shards'],
  flopsRequired: true,
  parseManifest,
  parseWork(o, path) {
    onlyKeys(o, path, ['kind', 'spec']);
    return { kind: 'wgsl', spec: parseWgslShardSpec(o.spec, `${path}.spec`) };
  },
  workBlobs: (w) => specBlobs(w.spec),
  manifestBlobs: (m) => [...m.shards, ...(m.honeypots ?? [])].flatMap(specBlobs),
  manifestTensors: (m) => [
    ...m.shards.flatMap((s, i) => specTensors(s, `manifest.shards[${i}]`)),
    ...(m.honeypots ?? []).flatMap((s, i) => specTensors(s, `manifest.honeypots[${i}]`)),
  ],
  flops: (m) => m.flopsPerShard,
  shardContext: (m) => ({
    kernel: { source: m.source, ...(m.entryPoint ? { entryPoint: m.entryPoint } : {}) },
  }),
  shardFromWork,
  parseShard,
  transferables(s) {
    if (isProgram<WgslDispatchShard, WgslProgramShard>(s)) {
      return s.buffers.flatMap((b) => (b.role === 'input' ? [b.tensor.data] : []));
    }
    return s.bindings.flatMap((b) => (b.role === 'input' ? [b.tensor.data] : []));
  },
};
