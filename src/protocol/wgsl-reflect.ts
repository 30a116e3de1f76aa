// Just enough reading of WGSL to check a shard's binding manifest against its shader before
// anything runs: the resource declarations (group, binding, address space, access, element
// type) and the entry points with their workgroup sizes. WebGPU has no reflection API; the
// pipeline built with an explicit layout is the final check, this gives the readable errors.
import { defined } from '../core/at.ts';
import type { DType } from '../core/tensor.ts';

export interface WgslResource {
  readonly group: number;
  readonly binding: number;
  readonly name: string;
  readonly space: 'storage' | 'uniform' | 'other';
  readonly access: 'read' | 'read_write';
  /** Scalar type of the elements where it is one of Hearth's dtypes. */
  readonly scalar: DType | null;
  readonly type: string;
  readonly line: number;
}

export interface WgslEntryPoint {
  readonly name: string;
  /** Literal workgroup size, or null when it uses override constants. */
  readonly workgroupSize: readonly [number, number, number] | null;
}

/** Removes comments (line and nested block) while keeping line numbers. */
export function stripComments(src: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src.charAt(i);
    const n = src[i + 1];
    if (depth === 0 && c === '/' && n === '/') {
      while (i < src.length && src[i] !== '\n') i++;
      out += '\n';
      continue;
    }
    if (c === '/' && n === '*') {
      depth++;
      i++;
      out += '  ';
      continue;
    }
    if (depth > 0 && c === '*' && n === '/') {
      depth--;
      i++;
      out += '  ';
      continue;
    }
    out += depth > 0 ? (c === '\n' ? '\n' : ' ') : c;
  }
  return out;
}

const ATTR_GROUP = /@group\s*\(\s*(\d+)\s*\)/;
const ATTR_BINDING = /@binding\s*\(\s*(\d+)\s*\)/;

function scalarOf(type: string): DType | null {
  const m = /\b(f32|f16|i32|u32)\b/.exec(type);
  return m ? (m[1] as DType) : null;
}

export function reflectResources(source: string): WgslResource[] {
  const src = stripComments(source);
  const out: WgslResource[] = [];
  // A declaration: attributes, `var<...>` name `:` type up to `;`.
  const decl = /((?:@\w+\s*(?:\([^)]*\))?\s*)+)var\s*(<[^>]*>)?\s*([A-Za-z_]\w*)\s*:\s*([^;]+);/g;
  for (let m = decl.exec(src); m; m = decl.exec(src)) {
    // Groups 1, 3 and 4 are not optional in the pattern: a match has them.
    const attrs = defined(m[1], 'declaration attributes');
    const g = ATTR_GROUP.exec(attrs);
    const b = ATTR_BINDING.exec(attrs);
    if (!g || !b) continue;
    const qual = (m[2] ?? '').replace(/[<>\s]/g, '').split(',');
    const space = qual[0] === 'storage' ? 'storage' : qual[0] === 'uniform' ? 'uniform' : 'other';
    const access = qual[1] === 'read_write' ? 'read_write' : 'read';
    const type = defined(m[4], 'declaration type').trim();
    out.push({
      group: Number(g[1]),
      binding: Number(b[1]),
      name: defined(m[3], 'declaration name'),
      space,
      access,
      scalar: scalarOf(type),
      type,
      line: src.slice(0, m.index + attrs.search(/@binding/)).split('\n').length,
    });
  }
  return out;
}

export function reflectEntryPoints(source: string): WgslEntryPoint[] {
  const src = stripComments(source);
  const out: WgslEntryPoint[] = [];
  const fn = /\bfn\s+([A-Za-z_]\w*)/g;
  for (let m = fn.exec(src); m; m = fn.exec(src)) {
    // The attributes of this function: the text since the previous declaration ended.
    const before = src.slice(0, m.index);
    const attrs = before.slice(Math.max(before.lastIndexOf(';'), before.lastIndexOf('}')) + 1);
    if (!/@compute\b/.test(attrs)) continue;
    const sizeText = /@workgroup_size\s*\(([^)]*)\)/.exec(attrs)?.[1];
    let workgroupSize: [number, number, number] | null = null;
    if (sizeText !== undefined) {
      const parts = sizeText
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean);
      if (parts.every((t) => /^\d+[iu]?$/.test(t))) {
        const n = parts.map((t) => Number.parseInt(t, 10));
        workgroupSize = [n[0] ?? 1, n[1] ?? 1, n[2] ?? 1];
      }
    }
    out.push({ name: defined(m[1], 'function name'), workgroupSize });
  }
  return out;
}
