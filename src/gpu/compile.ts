import { HearthError } from '../core/errors.ts';

export interface WgslMessage {
  readonly type: 'error' | 'warning' | 'info';
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

export interface ShaderSource {
  /** Shown in errors and set as the module's label: say whose shader it is ("matmul", a job id). */
  readonly label: string;
  readonly code: string;
}

/** "  3 | fn main( { }\n    |          ^" — the offending line with a caret under the column. */
export function excerpt(code: string, line: number, column: number): string {
  const lines = code.split('\n');
  const text = lines[line - 1];
  if (text === undefined || line < 1) return '';
  const gutter = String(line).length;
  const caret = ' '.repeat(Math.max(0, column - 1));
  return `${String(line).padStart(gutter)} | ${text}\n${' '.repeat(gutter)} | ${caret}^`;
}

/**
 * Compiles WGSL and returns the module, or throws a HearthError('wgsl/compile') naming the
 * shader, the line, the column and the compiler's message, with the offending line quoted.
 * Researchers send WGSL, so this message is part of Hearth's user interface.
 */
export async function compileWgsl(device: GPUDevice, source: ShaderSource): Promise<GPUShaderModule> {
  if (typeof source.code !== 'string' || source.code.trim() === '') {
    throw new HearthError('wgsl/compile', `Shader "${source.label}" is empty: send WGSL source text.`, {
      details: { shader: source.label },
    });
  }
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: source.label, code: source.code });
  const [info, scopeError] = await Promise.all([module.getCompilationInfo(), device.popErrorScope()]);
  const messages: WgslMessage[] = info.messages.map((m) => ({
    type: m.type,
    line: m.lineNum,
    column: m.linePos,
    message: m.message,
  }));
  const first = messages.find((m) => m.type === 'error');
  if (first) {
    const more = messages.filter((m) => m.type === 'error').length - 1;
    throw new HearthError(
      'wgsl/compile',
      `WGSL error in shader "${source.label}" at line ${first.line}, column ${first.column}: ${first.message}\n` +
        excerpt(source.code, first.line, first.column) +
        (more > 0 ? `\n(and ${more} more error${more > 1 ? 's' : ''})` : ''),
      { details: { shader: source.label, line: first.line, column: first.column, messages } },
    );
  }
  if (scopeError) {
    throw new HearthError('wgsl/compile', `Shader "${source.label}" was rejected: ${scopeError.message}`, {
      details: { shader: source.label, messages },
    });
  }
  return module;
}
