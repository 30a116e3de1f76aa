// A minimal ONNX ModelProto writer for the benchmarks: one graph of a few nodes, typed inputs and
// outputs, opset imports. Only the protobuf wire features ONNX needs here (varints and
// length-delimited fields). The production builder is a separate piece of work.

/** ONNX TensorProto.DataType codes used here. */
export const ONNX_TYPE = { float: 1, int32: 6, int64: 7, float16: 10 } as const;
export type OnnxElemType = (typeof ONNX_TYPE)[keyof typeof ONNX_TYPE];

export type AttrValue = number | string | readonly number[] | { readonly float: number };

export interface OnnxNode {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  /** Empty for the default ONNX domain; `com.microsoft` for contrib ops. */
  readonly domain?: string;
  /** Integers become INT attributes, `{ float }` FLOAT, strings STRING, arrays INTS. */
  readonly attributes?: Readonly<Record<string, AttrValue>>;
}

export interface OnnxValue {
  readonly name: string;
  readonly elemType: OnnxElemType;
  /** A number is a fixed size, a string a symbolic dimension. */
  readonly shape: readonly (number | string)[];
}

export interface OnnxModelSpec {
  readonly nodes: readonly OnnxNode[];
  readonly inputs: readonly OnnxValue[];
  readonly outputs: readonly OnnxValue[];
  /** Opset per domain, e.g. `{ '': 17, 'com.microsoft': 1 }`. */
  readonly opsets: Readonly<Record<string, number>>;
  readonly irVersion?: number;
  readonly name?: string;
}

/** Appends protobuf fields to a growing byte list. */
class Writer {
  private readonly bytes: number[] = [];

  private varint(v: bigint | number): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.bytes.push(Number((x & 0x7fn) | 0x80n));
      x >>= 7n;
    }
    this.bytes.push(Number(x));
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, v: number): this {
    this.tag(field, 0);
    this.varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.bytes.push(...b);
    return this;
  }

  raw(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.varint(data.length);
    for (const x of data) this.bytes.push(x);
    return this;
  }

  string(field: number, s: string): this {
    return this.raw(field, new TextEncoder().encode(s));
  }

  message(field: number, w: Writer): this {
    return this.raw(field, w.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

function attribute(name: string, v: AttrValue): Writer {
  const w = new Writer().string(1, name);
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use { float: ${v} } for a float`);
    return w.int(3, v).int(20, ATTR_INT);
  }
  if (typeof v === 'string') return w.string(4, v).int(20, ATTR_STRING);
  if ('float' in v) return w.float(2, v.float).int(20, ATTR_FLOAT);
  for (const x of v) w.int(8, x);
  return w.int(20, ATTR_INTS);
}

function node(n: OnnxNode, i: number): Writer {
  const w = new Writer();
  for (const x of n.inputs) w.string(1, x);
  for (const x of n.outputs) w.string(2, x);
  w.string(3, `${n.opType}_${i}`).string(4, n.opType);
  for (const [k, v] of Object.entries(n.attributes ?? {})) w.message(5, attribute(k, v));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function valueInfo(v: OnnxValue): Writer {
  const shape = new Writer();
  for (const d of v.shape) {
    shape.message(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().string(2, d));
  }
  const tensorType = new Writer().int(1, v.elemType).message(2, shape);
  return new Writer().string(1, v.name).message(2, new Writer().message(1, tensorType));
}

/**
 * Serialises a ModelProto: the bytes `InferenceSession.create()` takes.
 *
 * @example
 * const bytes = onnxModel({
 *   nodes: [{ opType: 'MatMul', inputs: ['A', 'B'], outputs: ['C'] }],
 *   inputs: [f32('A', [2, 3]), f32('B', [3, 4])],
 *   outputs: [f32('C', [2, 4])],
 *   opsets: { '': 13 },
 * });
 */
export function onnxModel(spec: OnnxModelSpec): Uint8Array {
  const graph = new Writer();
  spec.nodes.forEach((n, i) => {
    graph.message(1, node(n, i));
  });
  graph.string(2, spec.name ?? 'bench');
  for (const v of spec.inputs) graph.message(11, valueInfo(v));
  for (const v of spec.outputs) graph.message(12, valueInfo(v));
  const model = new Writer().int(1, spec.irVersion ?? 8).string(2, 'hearth-bench');
  for (const [domain, version] of Object.entries(spec.opsets)) {
    const op = new Writer();
    if (domain) op.string(1, domain);
    model.message(8, op.int(2, version));
  }
  return model.message(7, graph).finish();
}

/** A float tensor value description. */
export function f32(name: string, shape: readonly (number | string)[]): OnnxValue {
  return { name, elemType: ONNX_TYPE.float, shape };
}
