// Checking and running a WGSL shard start from one form, whichever form the shard came in (one
// dispatch over bindings, or a program of passes over named buffers): planProgram. The checks
// against the shader's own declarations (wgsl-reflect.ts) need no device, so the hub runs them at
// submit and the worker before it runs; passLayouts gives each pass the bind group layout both the
// hub's compile check and the runner build.
import { HearthError } from '../../core/errors.ts';
import type { DType } from '../../core/tensor.ts';
import { tensorBytes } from '../shard.ts';
import { reflectEntryPoints, reflectResources } from '../wgsl-reflect.ts';
import {
  isProgram,
  type WgslBinding,
  type WgslBindingSpec,
  type WgslBuffer,
  type WgslBufferSpec,
  type WgslDispatchShard,
  type WgslDispatchSpec,
  type WgslProgramShard,
  type WgslProgramSpec,
} from './wgsl.ts';

/** A buffer as the checks and the runner see it, whichever form the shard came in. */
export interface PlannedBuffer {
  /** Unique key: the buffer's name (program) or `#<binding>` (dispatch form). */
  readonly key: string;
  /** How errors name it: `binding 1 (input "x")` or `buffer "u" (scratch)`. */
  readonly label: string;
  readonly name: string;
  readonly role: 'input' | 'output' | 'scratch' | 'uniform';
  /** Element type of a storage buffer; null for a uniform. */
  readonly dtype: DType | null;
  readonly shape: readonly number[] | null;
  readonly bytes: number;
}

export interface PlannedPass {
  readonly entryPoint: string;
  readonly bind: readonly { readonly binding: number; readonly buffer: string }[];
  readonly dispatch: readonly [number, number, number];
}

export interface PlannedProgram {
  /** True for a dispatch-form shard: errors use its binding words, and roles fix the access. */
  readonly single: boolean;
  readonly buffers: readonly PlannedBuffer[];
  /** The program's distinct passes; `order` runs them. */
  readonly passes: readonly PlannedPass[];
  /** Steps as indices into `passes`, with repeat counts. */
  readonly steps: readonly { readonly repeat: number; readonly passes: readonly number[] }[];
  /** Dispatches of the whole program, repeats expanded. */
  readonly dispatches: number;
}

type AnyBinding = WgslBindingSpec | WgslBinding;
type AnyBuffer = WgslBufferSpec | WgslBuffer;

function storageBytes(dtype: DType, shape: readonly number[]): number {
  return tensorBytes(dtype, shape);
}

function bindingBuffer(b: AnyBinding, uniformBytes: (b: AnyBinding) => number): PlannedBuffer {
  const label = `binding ${b.binding} (${b.role} "${b.name}")`;
  const key = `#${b.binding}`;
  if (b.role === 'uniform') {
    return { key, label, name: b.name, role: 'uniform', dtype: null, shape: null, bytes: uniformBytes(b) };
  }
  const [dtype, shape] = b.role === 'input' ? [b.tensor.dtype, b.tensor.shape] : [b.dtype, b.shape];
  return { key, label, name: b.name, role: b.role, dtype, shape, bytes: storageBytes(dtype, shape) };
}

function programBuffer(b: AnyBuffer, uniformBytes: (b: AnyBuffer) => number): PlannedBuffer {
  const label = `buffer "${b.name}" (${b.role})`;
  if (b.role === 'uniform') {
    return {
      key: b.name,
      label,
      name: b.name,
      role: 'uniform',
      dtype: null,
      shape: null,
      bytes: uniformBytes(b),
    };
  }
  const [dtype, shape] = b.role === 'input' ? [b.tensor.dtype, b.tensor.shape] : [b.dtype, b.shape];
  return { key: b.name, label, name: b.name, role: b.role, dtype, shape, bytes: storageBytes(dtype, shape) };
}

/**
 * One form for both kinds of shard. `uniformBytes` says how big a uniform is: its data's length
 * on a worker, the blob's size on the hub (or 0 when unknown).
 */
export function planProgram(
  s: (WgslDispatchSpec | WgslDispatchShard | WgslProgramSpec | WgslProgramShard) & {
    readonly entryPoint?: string;
  },
  defaultEntry: string,
  uniformBytes: (b: AnyBinding | AnyBuffer) => number,
): PlannedProgram {
  if (!isProgram<WgslDispatchSpec | WgslDispatchShard, WgslProgramSpec | WgslProgramShard>(s)) {
    const bindings = s.bindings as readonly AnyBinding[];
    const buffers = bindings.map((b) => bindingBuffer(b, uniformBytes));
    const pass: PlannedPass = {
      entryPoint: s.entryPoint ?? defaultEntry,
      bind: bindings.map((b) => ({ binding: b.binding, buffer: `#${b.binding}` })),
      dispatch: s.dispatch,
    };
    return { single: true, buffers, passes: [pass], steps: [{ repeat: 1, passes: [0] }], dispatches: 1 };
  }
  const buffers = (s.buffers as readonly AnyBuffer[]).map((b) => programBuffer(b, uniformBytes));
  const passes: PlannedPass[] = [];
  const steps: { repeat: number; passes: number[] }[] = [];
  let dispatches = 0;
  for (const step of s.program) {
    const group = 'repeat' in step ? step : { repeat: 1, passes: [step] };
    const idx = group.passes.map((p) => passes.push(p) - 1);
    steps.push({ repeat: group.repeat, passes: idx });
    dispatches += group.repeat * group.passes.length;
  }
  return { single: false, buffers, passes, steps, dispatches };
}

const manifestCheck = (where: string, message: string, details: Record<string, unknown> = {}) =>
  new HearthError('wgsl/manifest', `${where}: ${message}`, { details });

const ROLE_NEEDS = {
  input: { space: 'storage', access: 'read', decl: 'var<storage, read>' },
  output: { space: 'storage', access: 'read_write', decl: 'var<storage, read_write>' },
  scratch: { space: 'storage', access: undefined, decl: 'var<storage, read> or var<storage, read_write>' },
  uniform: { space: 'uniform', access: undefined, decl: 'var<uniform>' },
} as const;

/**
 * Checks a planned shard against its shader's declarations, before anything runs: every pass's
 * entry point is a @compute function, every bound slot is declared in @group(0) with the address
 * space (and, for dispatch-form shards, the access) its buffer's role needs and the buffer's
 * element type; a dispatch-form shard binds every slot its shader declares. Throws 'wgsl/manifest'
 * naming the shard (`where`), the binding and the shader's line. Needs no device: the hub runs it
 * at submit, the worker before it runs.
 *
 * @example
 * checkProgramAgainstSource(source, planProgram(spec, 'main', () => 0), 'manifest.shards[3]');
 */
export function checkProgramAgainstSource(source: string, plan: PlannedProgram, where: string): void {
  const resources = reflectResources(source);
  const entries = reflectEntryPoints(source);
  for (const r of resources) {
    if (r.group !== 0) {
      throw manifestCheck(
        where,
        `line ${r.line}: "${r.name}" is in @group(${r.group}); shard bindings must all be in @group(0).`,
        { line: r.line },
      );
    }
  }
  const byKey = new Map(plan.buffers.map((b) => [b.key, b]));
  for (const [pi, pass] of plan.passes.entries()) {
    const at = plan.single ? where : `${where} pass ${pi} ("${pass.entryPoint}")`;
    if (!entries.some((e) => e.name === pass.entryPoint)) {
      throw manifestCheck(
        at,
        `the shader has no @compute entry point "${pass.entryPoint}"${entries.length ? ` (it has: ${entries.map((e) => e.name).join(', ')})` : ''}.`,
        { entryPoint: pass.entryPoint },
      );
    }
    if (plan.single) {
      for (const r of resources) {
        if (!pass.bind.some((b) => b.binding === r.binding)) {
          throw manifestCheck(
            at,
            `line ${r.line}: the shader declares @binding(${r.binding}) "${r.name}" but the manifest has no binding ${r.binding}.`,
            { binding: r.binding, line: r.line },
          );
        }
      }
    }
    for (const slot of pass.bind) {
      const b = byKey.get(slot.buffer);
      if (!b) {
        throw manifestCheck(
          at,
          `slot ${slot.binding} names buffer "${slot.buffer}", which the shard does not declare.`,
          {
            binding: slot.binding,
          },
        );
      }
      const r = resources.find((x) => x.binding === slot.binding && x.group === 0);
      const what = plan.single ? b.label : `slot ${slot.binding} (${b.label})`;
      if (!r) {
        throw manifestCheck(
          at,
          `${what} is not declared in the shader (no @group(0) @binding(${slot.binding})).`,
          {
            binding: slot.binding,
          },
        );
      }
      const role = plan.single ? b.role : b.role === 'uniform' ? 'uniform' : 'scratch';
      const need = ROLE_NEEDS[role];
      if (r.space !== need.space || (need.access && r.access !== need.access)) {
        throw manifestCheck(
          at,
          `${what} needs ${need.decl}, but line ${r.line} declares "${r.name}" as var<${r.space}${r.space === 'storage' ? `, ${r.access}` : ''}>.`,
          { binding: slot.binding, line: r.line },
        );
      }
      if (b.dtype && r.scalar && r.scalar !== b.dtype) {
        throw manifestCheck(
          at,
          `${what} is ${b.dtype}, but line ${r.line} declares "${r.name}: ${r.type}".`,
          {
            binding: slot.binding,
            line: r.line,
          },
        );
      }
    }
  }
}

/** A pass's bind group layout as the shader declares its slots (what the runner builds). */
export interface WgslPassLayout {
  readonly entryPoint: string;
  readonly slots: readonly {
    readonly binding: number;
    readonly type: 'uniform' | 'read-only-storage' | 'storage';
  }[];
}

/** `entryPoint|0:u,1:r,2:s`: passes with equal keys share a pipeline. */
export const layoutKey = (l: WgslPassLayout): string =>
  `${l.entryPoint}|${l.slots.map((s) => `${s.binding}:${s.type[0]}`).join(',')}`;

/**
 * Each pass's layout, from the shader's declarations of the slots it binds (run after
 * checkProgramAgainstSource, which makes sure they are declared).
 */
export function passLayouts(source: string, plan: PlannedProgram): WgslPassLayout[] {
  const resources = reflectResources(source);
  return plan.passes.map((p) => ({
    entryPoint: p.entryPoint,
    slots: [...p.bind]
      .sort((a, b) => a.binding - b.binding)
      .map((s) => {
        const r = resources.find((x) => x.group === 0 && x.binding === s.binding);
        const type =
          r?.space === 'uniform' ? 'uniform' : r?.access === 'read_write' ? 'storage' : 'read-only-storage';
        return { binding: s.binding, type } as const;
      }),
  }));
}
