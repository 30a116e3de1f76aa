// onnxruntime-web reports failures as plain Errors whose message carries ORT's status text
// ("Can't create a session. ERROR_CODE: 6, ERROR_MESSAGE: No Op registered for …"). These
// functions turn them into HearthErrors whose code says whose problem it is and whose message
// names what was wrong (the operator, the input, the node), with ORT's own text in `details.ort`.
import { defined } from '../core/at.ts';
import { HearthError, type HearthErrorCode } from '../core/errors.ts';
import type { OnnxBackend } from '../protocol/shard.ts';

// ORT's OrtErrorCode values that appear in messages.
const ORT_INVALID_PROTOBUF = 7;

interface OrtStatus {
  readonly code: number | undefined;
  /** ORT's message without the C++ source location some of them start with. */
  readonly text: string;
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}

function parseStatus(raw: string): OrtStatus {
  const m = /ERROR_CODE: (\d+), ERROR_MESSAGE: ([\s\S]*)$/.exec(raw);
  return { code: m ? Number(m[1]) : undefined, text: stripSourceLocation((m?.[2] ?? raw).trim()) };
}

/** "/path/file.h:56 void ns::fn(const T &, int) The message" → "The message". */
function stripSourceLocation(s: string): string {
  const loc = /^\S+\.(?:h|hpp|cc|cpp|c):\d+ /.exec(s);
  if (!loc) return s;
  let rest = s.slice(loc[0].length);
  const open = rest.indexOf('(');
  if (open >= 0 && rest.slice(0, open).includes('::')) {
    let depth = 0;
    for (let i = open; i < rest.length; i++) {
      if (rest[i] === '(') depth++;
      else if (rest[i] === ')' && --depth === 0) {
        rest = rest.slice(i + 1).replace(/^ const\b/, '');
        break;
      }
    }
  }
  return rest.trim();
}

function short(hash: string): string {
  return `${hash.slice(0, 12)}…`;
}

function make(
  code: HearthErrorCode,
  message: string,
  e: unknown,
  details: Record<string, unknown>,
): HearthError {
  return new HearthError(code, message, { details, cause: e });
}

/**
 * Maps a failure of `InferenceSession.create` to 'onnx/unsupported' (an operator, opset or IR
 * version this onnxruntime-web cannot run), 'gpu/unavailable' (the WebGPU EP could not start) or
 * 'onnx/model' (bytes that are no valid ONNX model).
 */
export function sessionCreateError(e: unknown, model: string, backend: OnnxBackend): HearthError {
  const raw = errorText(e);
  const { code, text } = parseStatus(raw);
  const base = { model, backend, ort: text, ...(code === undefined ? {} : { ortCode: code }) };
  const where = `ONNX model ${short(model)} (${backend})`;
  let m: RegExpExecArray | null;
  if ((m = /No Op registered for (\S+) with domain_version of (\d+)/.exec(text))) {
    return make(
      'onnx/unsupported',
      `${where}: operator "${m[1]}" (opset ${m[2]}) is not supported by onnxruntime-web. Export the model with standard operators.`,
      e,
      { ...base, op: m[1], opset: Number(m[2]) },
    );
  }
  if ((m = /(\S+)\((-?\d+)\) is not a registered function\/op/.exec(text))) {
    return make(
      'onnx/unsupported',
      `${where}: operator "${m[1]}" is not registered in onnxruntime-web (unknown operator or domain). Export the model with standard operators.`,
      e,
      { ...base, op: m[1] },
    );
  }
  if ((m = /Could not find an implementation for (\S+)\((\d+)\) node with name '([^']*)'/.exec(text))) {
    return make(
      'onnx/unsupported',
      `${where}: node "${m[3]}" uses operator "${m[1]}" (opset ${m[2]}) with input types that onnxruntime-web does not implement.`,
      e,
      { ...base, op: m[1], opset: Number(m[2]), node: m[3] },
    );
  }
  if (
    (m = /Opset (\d+) is under development/.exec(text)) ||
    (m = /opset (\d+) .*?(?:not supported|is under development)/i.exec(text))
  ) {
    return make(
      'onnx/unsupported',
      `${where}: opset ${m[1]} is newer than this onnxruntime-web supports. Export the model with an older opset.`,
      e,
      { ...base, opset: Number(m[1]) },
    );
  }
  if ((m = /Unsupported model IR version: (\d+)/.exec(text))) {
    return make(
      'onnx/unsupported',
      `${where}: ONNX IR version ${m[1]} is not supported by this onnxruntime-web.`,
      e,
      { ...base, irVersion: Number(m[1]) },
    );
  }
  if (
    backend === 'webgpu' &&
    code === undefined &&
    /WebGPU is not supported|Failed to get GPU adapter|no available backend/i.test(text)
  ) {
    return make(
      'gpu/unavailable',
      `${where}: the WebGPU execution provider could not start: ${text}`,
      e,
      base,
    );
  }
  if (code === ORT_INVALID_PROTOBUF) {
    return make(
      'onnx/model',
      `${where}: the bytes are not a valid ONNX model (protobuf parsing failed): corrupt or truncated file.`,
      e,
      base,
    );
  }
  return make('onnx/model', `${where}: onnxruntime-web rejected the model: ${text}`, e, base);
}

/**
 * Maps a failure of `session.run` to 'onnx/run', naming the input whose shape does not fit or
 * the node that failed.
 */
export function sessionRunError(e: unknown, model: string, backend: OnnxBackend): HearthError {
  const raw = errorText(e);
  const { code, text } = parseStatus(raw);
  const base = { model, backend, ort: text, ...(code === undefined ? {} : { ortCode: code }) };
  const where = `ONNX model ${short(model)} (${backend})`;
  let m: RegExpExecArray | null;
  if (
    (m = /Got invalid dimensions for input: (\S+) for the following indices\s+([\s\S]*?)Please fix/.exec(
      text,
    ))
  ) {
    const dims = [
      ...defined(m[2], 'ORT dimension list').matchAll(/index: (\d+) Got: (\d+) Expected: (\d+)/g),
    ].map((d) => ({
      index: Number(d[1]),
      got: Number(d[2]),
      expected: Number(d[3]),
    }));
    const said = dims.map((d) => `dimension ${d.index} is ${d.got}, the model expects ${d.expected}`);
    return make('onnx/run', `${where}: input "${m[1]}" has the wrong shape: ${said.join('; ')}.`, e, {
      ...base,
      input: m[1],
      dims,
    });
  }
  if ((m = /Invalid rank for input: (\S+) Got: (\d+) Expected: (\d+)/.exec(text))) {
    return make(
      'onnx/run',
      `${where}: input "${m[1]}" has rank ${m[2]}, the model expects rank ${m[3]}.`,
      e,
      { ...base, input: m[1], got: Number(m[2]), expected: Number(m[3]) },
    );
  }
  if ((m = /Unexpected input data type\. Actual: \((.*?)\) , expected: \((.*?)\)/.exec(text))) {
    return make('onnx/run', `${where}: an input has type ${m[1]}, the model expects ${m[2]}.`, e, base);
  }
  if ((m = /running (\S+) node\. Name:'([^']*)' Status Message: ([\s\S]*)$/.exec(text))) {
    const why = stripSourceLocation(defined(m[3], 'ORT status message').trim());
    // The WebGPU EP takes f16 nodes at partitioning and only finds out at shader generation.
    if (/requires f16 but the device does not support it/.test(why)) {
      return make(
        'onnx/unsupported',
        `${where}: node "${m[2]}" (${m[1]}) needs f16 shaders, and this GPU has no shader-f16.`,
        e,
        { ...base, op: m[1], node: m[2], feature: 'shader-f16' },
      );
    }
    return make('onnx/run', `${where}: node "${m[2]}" (${m[1]}) failed: ${why}`, e, {
      ...base,
      op: m[1],
      node: m[2],
    });
  }
  if (
    e instanceof RangeError ||
    /out of memory|Cannot enlarge memory|allocation failed|memory access out of bounds/i.test(raw)
  ) {
    return make(
      'onnx/run',
      `${where}: ran out of memory (${text}). Use smaller batches for this model.`,
      e,
      base,
    );
  }
  return make('onnx/run', `${where}: the run failed: ${text}`, e, base);
}
