// A small ONNX ModelProto writer: graphs of nodes with attributes, initializers (raw
// little-endian data), typed inputs and outputs with fixed or symbolic dimensions, opset imports.
// Tests build their models with it, and `hearth example` its example job.
// Only the protobuf wire features ONNX needs: varints, fixed32 and length-delimited fields.
// Field numbers follow onnx/onnx.proto (proto2, so repeated scalars are written unpacked).

/** ONNX TensorProto.DataType codes. */
export const ONNX_TYPE = {
  float: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  double: 11,
  uint32: 12,
  uint64: 13,
} as const;
export type OnnxElemType = (typeof ONNX_TYPE)[keyof typeof ONNX_TYPE];

/**
 * An attribute value: an integer is INT, `{ float }` FLOAT, a string STRING, `number[]` INTS,
 * `{ floats }` FLOATS, `{ tensor }` TENSOR.
 */
export type AttrValue =
  | number
  | string
  | readonly number[]
  | { readonly float: number }
  | { readonly floats: readonly number[] }
  | { readonly tensor: Initializer };

export interface OnnxNode {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  /** Empty for the default ONNX domain; `com.microsoft` for contrib ops. */
  readonly domain?: string;
  readonly attributes?: Readonly<Record<string, AttrValue>>;
}

export interface OnnxValue {
  readonly name: string;
  readonly elemType: OnnxElemType;
  /** A number is a fixed size, a string a symbolic dimension (e.g. 'batch'). */
  readonly shape: readonly (number | string)[];
}

/** A constant tensor stored in the graph, its data as raw little-endian bytes. */
export interface Initializer {
  readonly name: string;
  readonly elemType: OnnxElemType;
  readonly dims: readonly number[];
  readonly data: ArrayBufferView;
  /**
   * Store the data in this external file instead (data_location EXTERNAL, as `onnx.save` does with
   * save_as_external_data): the model then carries no bytes for it. For tests of such models.
   */
  readonly external?: string;
}

export interface OnnxModelSpec {
  readonly nodes: readonly OnnxNode[];
  readonly inputs: readonly OnnxValue[];
  readonly outputs: readonly OnnxValue[];
  readonly initializers?: readonly Initializer[];
  /** Opset per domain, e.g. `{ '': 17, 'com.microsoft': 1 }`. */
  readonly opsets: Readonly<Record<string, number>>;
  readonly irVersion?: number;
  readonly name?: string;
  /** producer_name. Default 'hearth-test'. */
  readonly producer?: string;
}

/**
 * Appends protobuf fields to a growing list of byte chunks: small fields collect in `pending`,
 * large payloads (initializer data, nested messages) are kept as chunks and copied in `finish`
 * (once per nesting level), so a model of a few hundred MB is not built one array element per
 * byte. A chunk is a view of the caller's data until then: `onnxModel` finishes before it returns.
 */
class Writer {
  private readonly chunks: Uint8Array[] = [];
  private pending: number[] = [];
  private length = 0;

  private flush(): void {
    if (this.pending.length === 0) return;
    this.chunks.push(Uint8Array.from(this.pending));
    this.pending = [];
  }

  private push(b: number): void {
    this.pending.push(b);
    this.length++;
  }

  private varint(v: bigint | number): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.push(Number((x & 0x7fn) | 0x80n));
      x >>= 7n;
    }
    this.push(Number(x));
  }

  private tag(field: number, wire: 0 | 2 | 5): void {
    this.varint((field << 3) | wire);
  }

  /** int32/int64/enum: negative values as 64-bit two's complement, as protobuf does. */
  int(field: number, v: number | bigint): this {
    this.tag(field, 0);
    this.varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    for (const x of b) this.push(x);
    return this;
  }

  raw(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.varint(data.length);
    if (data.length < 64) {
      for (const x of data) this.push(x);
      return this;
    }
    this.flush();
    this.chunks.push(data);
    this.length += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.raw(field, new TextEncoder().encode(s));
  }

  message(field: number, w: Writer): this {
    return this.raw(field, w.finish());
  }

  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

// AttributeProto.AttributeType
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

function tensorProto(t: Initializer): Writer {
  const w = new Writer();
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.elemType).string(8, t.name);
  if (t.external !== undefined) {
    // external_data: [{ key: 'location', value: file }], data_location: EXTERNAL (1).
    return w.raw(13, new Writer().string(1, 'location').string(2, t.external).finish()).int(14, 1);
  }
  return w.raw(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

function attribute(name: string, v: AttrValue): Writer {
  const w = new Writer().string(1, name);
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use { float: ${v} } for a float`);
    return w.int(3, v).int(20, ATTR.INT);
  }
  if (typeof v === 'string') return w.string(4, v).int(20, ATTR.STRING);
  if ('float' in v) return w.float(2, v.float).int(20, ATTR.FLOAT);
  if ('floats' in v) {
    for (const x of v.floats) w.float(7, x);
    return w.int(20, ATTR.FLOATS);
  }
  if ('tensor' in v) return w.message(5, tensorProto(v.tensor)).int(20, ATTR.TENSOR);
  for (const x of v as readonly number[]) w.int(8, x);
  return w.int(20, ATTR.INTS);
}

function node(n: OnnxNode, i: number): Writer {
  const w = new Writer();
  for (const x of n.inputs) w.string(1, x);
  for (const x of n.outputs) w.string(2, x);
  w.string(3, n.name ?? `${n.opType}_${i}`).string(4, n.opType);
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
 *   nodes: [{ opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }],
 *   inputs: [value('x', 'float', ['batch', 3])],
 *   initializers: [initializer('w', 'float', [3, 4], new Float32Array(12))],
 *   outputs: [value('y', 'float', ['batch', 4])],
 *   opsets: { '': 17 },
 * });
 */
export function onnxModel(spec: OnnxModelSpec): Uint8Array {
  const graph = new Writer();
  spec.nodes.forEach((n, i) => {
    graph.message(1, node(n, i));
  });
  graph.string(2, spec.name ?? 'test');
  for (const t of spec.initializers ?? []) graph.message(5, tensorProto(t));
  for (const v of spec.inputs) graph.message(11, valueInfo(v));
  for (const v of spec.outputs) graph.message(12, valueInfo(v));
  const model = new Writer()
    .int(1, spec.irVersion ?? 8)
    .string(2, spec.producer ?? 'hearth-test')
    .string(3, '0');
  for (const [domain, version] of Object.entries(spec.opsets)) {
    const op = new Writer();
    if (domain) op.string(1, domain);
    model.message(8, op.int(2, version));
  }
  return model.message(7, graph).finish();
}

/** A typed value (graph input or output). */
export function value(
  name: string,
  type: keyof typeof ONNX_TYPE,
  shape: readonly (number | string)[],
): OnnxValue {
  return { name, elemType: ONNX_TYPE[type], shape };
}

/** An initializer from a typed array (its bytes are copied into the model as raw_data). */
export function initializer(
  name: string,
  type: keyof typeof ONNX_TYPE,
  dims: readonly number[],
  data: ArrayBufferView,
): Initializer {
  return { name, elemType: ONNX_TYPE[type], dims, data };
}
