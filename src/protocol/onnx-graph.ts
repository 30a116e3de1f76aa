// A small reader for ONNX ModelProto bytes: just what the hub needs to count a model's FLOPs
// (flops.ts) — the main graph's nodes (op type, inputs, outputs, the attributes that decide
// shapes), initializers' dims (and the values of small integer ones, for Reshape and friends),
// and the declared shapes of graph inputs, outputs and value_info.
//
// The bytes come from a researcher (DESIGN.md invariant 3), so this is a defensive protobuf
// decoder: every length and varint is bounds-checked against the buffer, counts are capped, and
// anything malformed is a HearthError('onnx/model') that says what was wrong and where. Subgraphs
// (If/Loop/Scan bodies) and every field not listed here are skipped by their length without being
// decoded, so the nesting this reader follows is fixed (model → graph → node → attribute →
// tensor) and no input can make it recurse.
import { HearthError } from '../core/errors.ts';

/** Bounds on what the reader accepts (a model over them is refused, not truncated). */
export const ONNX_GRAPH_LIMITS = {
  maxNodes: 200_000,
  maxInitializers: 200_000,
  /** Graph inputs + outputs + value_info entries. */
  maxValues: 200_000,
  maxNodeInputs: 4096,
  maxAttributes: 256,
  /** Elements of an INTS attribute, dims of a shape or tensor. */
  maxInts: 4096,
  maxNameChars: 4096,
  /** Integer tensors up to this many elements keep their values (shape arguments). */
  maxConstElements: 64,
} as const;

/** An attribute as far as shape inference needs it. */
export interface OnnxAttribute {
  readonly i?: number;
  readonly ints?: readonly number[];
  readonly s?: string;
  /** A TENSOR attribute (Constant's `value`). */
  readonly t?: OnnxTensorInfo;
}

/** One NodeProto of the main graph; `name` is made up (`${opType}_${index}`) when the model has none. */
export interface OnnxGraphNode {
  readonly opType: string;
  readonly domain: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: ReadonlyMap<string, OnnxAttribute>;
}

/** A tensor's dims, and its values when it is a small integer tensor. */
export interface OnnxTensorInfo {
  readonly name: string;
  readonly dataType: number;
  readonly dims: readonly number[];
  readonly ints?: readonly number[];
  /** True when the tensor's data lives in an external file (data_location EXTERNAL). */
  readonly external?: boolean;
}

/** A dimension: a size, a symbol ('batch'), or unknown (null). */
export type OnnxDim = number | string | null;

/** A graph input, output or value_info entry: its name and declared shape. */
export interface OnnxValueInfo {
  readonly name: string;
  /** Absent when the value is not a tensor or declares no shape. */
  readonly shape?: readonly OnnxDim[];
  /** TensorProto.DataType of a tensor value (1 float, 6 int32, 7 int64, 10 float16, …), when declared. */
  readonly elemType?: number;
}

/** The parts of a ModelProto's main graph that FLOP counting uses. */
export interface OnnxGraph {
  readonly nodes: readonly OnnxGraphNode[];
  readonly initializers: ReadonlyMap<string, OnnxTensorInfo>;
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
  readonly valueInfo: readonly OnnxValueInfo[];
}

/** Non-fatal: a name with bad UTF-8 reads with U+FFFD, as ONNX tools show it. */
const UTF8 = new TextDecoder();

// TensorProto.DataType codes of integer types whose values can be shape arguments.
const INT64 = 7;
const INT32 = 6;

/** A bounded view of protobuf bytes; `where` names the message being read, for errors. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    readonly start: number,
    readonly end: number,
    readonly where: string,
  ) {
    this.pos = start;
  }

  fail(message: string): never {
    throw new HearthError('onnx/model', `ONNX model: ${this.where} at byte ${this.pos}: ${message}`, {
      details: { where: this.where, offset: this.pos },
    });
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** The next byte of a varint; an 'onnx/model' error when the message ends first. */
  varintByte(): number {
    const b = this.pos < this.end ? this.buf[this.pos] : undefined;
    if (b === undefined) return this.fail('a varint runs past the end of its message.');
    this.pos++;
    return b;
  }

  /** An unsigned varint as a number; over 2^53 is an error (no ONNX size gets there). */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.varintByte();
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(value)) this.fail('a varint is larger than 2^53.');
        return value;
      }
      scale *= 128;
    }
    return this.fail('a varint is longer than 10 bytes.');
  }

  /** An int64 varint (negatives are 10-byte two's complement), as a safe integer. */
  int64(): number {
    const from = this.pos;
    let big = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.varintByte();
      big |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        const v = Number(BigInt.asIntN(64, big));
        if (!Number.isSafeInteger(v)) {
          this.pos = from;
          this.fail('an integer is outside ±2^53.');
        }
        return v;
      }
      shift += 7n;
    }
    return this.fail('a varint is longer than 10 bytes.');
  }

  /** The bounds of a length-delimited field's payload; the reader moves past it. */
  bytes(): [number, number] {
    const n = this.varint();
    if (n > this.end - this.pos) this.fail(`a field of ${n} bytes runs past the end of its message.`);
    const at = this.pos;
    this.pos += n;
    return [at, at + n];
  }

  sub(where: string): Reader {
    const [a, b] = this.bytes();
    return new Reader(this.buf, a, b, where);
  }

  string(what: string): string {
    const [a, b] = this.bytes();
    if (b - a > ONNX_GRAPH_LIMITS.maxNameChars) {
      this.fail(`${what} is ${b - a} bytes, over the ${ONNX_GRAPH_LIMITS.maxNameChars}-byte limit.`);
    }
    return UTF8.decode(this.buf.subarray(a, b));
  }

  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint64Skip();
        return;
      case 1:
        if (this.end - this.pos < 8) this.fail('a fixed64 field runs past the end.');
        this.pos += 8;
        return;
      case 2:
        this.bytes();
        return;
      case 5:
        if (this.end - this.pos < 4) this.fail('a fixed32 field runs past the end.');
        this.pos += 4;
        return;
      default:
        // Groups (3, 4) are not used by onnx.proto; 6 and 7 do not exist.
        this.fail(`wire type ${wire} is not one ONNX uses.`);
    }
  }

  varint64Skip(): void {
    for (let i = 0; i < 10; i++) {
      if ((this.varintByte() & 0x80) === 0) return;
    }
    this.fail('a varint is longer than 10 bytes.');
  }

  /** The next field's number and wire type, or undefined at the end. */
  tag(): [number, number] | undefined {
    if (this.done) return undefined;
    const t = this.varint();
    const field = Math.floor(t / 8);
    if (field === 0) this.fail('field number 0 is not valid protobuf.');
    return [field, t & 7];
  }

  /** A repeated int64 field: one unpacked value (wire 0) or a packed run (wire 2), appended to out. */
  ints(wire: number, out: number[], what: string): void {
    if (wire === 0) out.push(this.int64());
    else if (wire === 2) {
      const r = this.sub(what);
      while (!r.done) {
        out.push(r.int64());
        if (out.length > ONNX_GRAPH_LIMITS.maxInts) break;
      }
    } else this.fail(`${what}: expected integers, got wire type ${wire}.`);
    if (out.length > ONNX_GRAPH_LIMITS.maxInts) {
      this.fail(`${what} has more than ${ONNX_GRAPH_LIMITS.maxInts} values.`);
    }
  }

  /**
   * Integer tensor data kept only while small (shape arguments): values past `cap` are skipped
   * by length, and `out` then holds more than `cap` values so the caller knows to drop them.
   */
  intsCapped(wire: number, out: number[], cap: number, what: string): void {
    if (wire === 0) {
      if (out.length <= cap) out.push(this.int64());
      else this.varint64Skip();
    } else if (wire === 2) {
      const r = this.sub(what);
      while (!r.done && out.length <= cap) out.push(r.int64());
    } else this.fail(`${what}: expected integers, got wire type ${wire}.`);
  }

  expect(wire: number, want: number, what: string): void {
    if (wire !== want) this.fail(`${what}: expected wire type ${want}, got ${wire}.`);
  }
}

function readTensor(r: Reader): OnnxTensorInfo {
  const dims: number[] = [];
  let dataType = 0;
  let name = '';
  let raw: [number, number] | undefined;
  const int64Data: number[] = [];
  const int32Data: number[] = [];
  let external = false;
  for (let t = r.tag(); t; t = r.tag()) {
    const [f, w] = t;
    if (f === 1) r.ints(w, dims, 'tensor.dims');
    else if (f === 13) {
      r.skip(w); // external_data entries: their presence is what matters
      external = true;
    } else if (f === 14) {
      r.expect(w, 0, 'tensor.data_location');
      if (r.varint() === 1) external = true;
    } else if (f === 2) {
      r.expect(w, 0, 'tensor.data_type');
      dataType = r.varint();
    } else if (f === 8) {
      r.expect(w, 2, 'tensor.name');
      name = r.string('tensor.name');
    } else if (f === 9) {
      r.expect(w, 2, 'tensor.raw_data');
      raw = r.bytes();
    } else if (f === 7) {
      r.intsCapped(w, int64Data, ONNX_GRAPH_LIMITS.maxConstElements, 'tensor.int64_data');
    } else if (f === 5) {
      r.intsCapped(w, int32Data, ONNX_GRAPH_LIMITS.maxConstElements, 'tensor.int32_data');
    } else r.skip(w);
  }
  for (const d of dims) if (d < 0) r.fail(`tensor ${name || '(unnamed)'} has a negative dim ${d}.`);
  const count = dims.reduce((a, b) => a * b, 1);
  let ints: number[] | undefined;
  if ((dataType === INT64 || dataType === INT32) && count <= ONNX_GRAPH_LIMITS.maxConstElements) {
    if (raw) {
      const size = dataType === INT64 ? 8 : 4;
      if (raw[1] - raw[0] !== count * size) {
        r.fail(
          `tensor ${name || '(unnamed)'}: raw_data is ${raw[1] - raw[0]} bytes, its dims need ${count * size}.`,
        );
      }
      const view = new DataView(r.buf.buffer, r.buf.byteOffset + raw[0], raw[1] - raw[0]);
      ints = [];
      for (let i = 0; i < count; i++) {
        const v = size === 8 ? Number(view.getBigInt64(i * 8, true)) : view.getInt32(i * 4, true);
        // A value outside ±2^53 cannot be a shape argument: leave the tensor's values unknown.
        if (!Number.isSafeInteger(v)) {
          ints = undefined;
          break;
        }
        ints.push(v);
      }
    } else {
      const list = dataType === INT64 ? int64Data : int32Data;
      if (list.length === count) ints = list;
    }
  }
  return { name, dataType, dims, ...(ints ? { ints } : {}), ...(external ? { external } : {}) };
}

function readAttribute(r: Reader): [string, OnnxAttribute] {
  let name = '';
  let i: number | undefined;
  let s: string | undefined;
  let t: OnnxTensorInfo | undefined;
  const ints: number[] = [];
  for (let tag = r.tag(); tag; tag = r.tag()) {
    const [f, w] = tag;
    if (f === 1) {
      r.expect(w, 2, 'attribute.name');
      name = r.string('attribute.name');
    } else if (f === 3) {
      r.expect(w, 0, 'attribute.i');
      i = r.int64();
    } else if (f === 4) {
      r.expect(w, 2, 'attribute.s');
      // Only short strings decide shapes (auto_pad); a long one (a custom op's payload) is valid
      // ONNX and is skipped rather than refused.
      const [a, b] = r.bytes();
      if (b - a <= ONNX_GRAPH_LIMITS.maxNameChars) s = UTF8.decode(r.buf.subarray(a, b));
    } else if (f === 5) {
      r.expect(w, 2, 'attribute.t');
      t = readTensor(r.sub(`attribute ${name}.t`));
    } else if (f === 8) r.ints(w, ints, `attribute ${name}.ints`);
    else r.skip(w);
  }
  if (!name) r.fail('an attribute has no name.');
  return [
    name,
    {
      ...(i !== undefined ? { i } : {}),
      ...(ints.length ? { ints } : {}),
      ...(s !== undefined ? { s } : {}),
      ...(t ? { t } : {}),
    },
  ];
}

function readNode(r: Reader, index: number): OnnxGraphNode {
  const inputs: string[] = [];
  const outputs: string[] = [];
  const attributes = new Map<string, OnnxAttribute>();
  let opType = '';
  let domain = '';
  let name = '';
  for (let t = r.tag(); t; t = r.tag()) {
    const [f, w] = t;
    if (f === 1 || f === 2) {
      r.expect(w, 2, f === 1 ? 'node.input' : 'node.output');
      const list = f === 1 ? inputs : outputs;
      list.push(r.string(f === 1 ? 'node.input' : 'node.output'));
      if (list.length > ONNX_GRAPH_LIMITS.maxNodeInputs) {
        r.fail(`node ${index} has more than ${ONNX_GRAPH_LIMITS.maxNodeInputs} inputs or outputs.`);
      }
    } else if (f === 3) {
      r.expect(w, 2, 'node.name');
      name = r.string('node.name');
    } else if (f === 4) {
      r.expect(w, 2, 'node.op_type');
      opType = r.string('node.op_type');
    } else if (f === 7) {
      r.expect(w, 2, 'node.domain');
      domain = r.string('node.domain');
    } else if (f === 5) {
      r.expect(w, 2, 'node.attribute');
      const [k, v] = readAttribute(r.sub(`node ${index} attribute`));
      attributes.set(k, v);
      if (attributes.size > ONNX_GRAPH_LIMITS.maxAttributes) {
        r.fail(`node ${index} has more than ${ONNX_GRAPH_LIMITS.maxAttributes} attributes.`);
      }
    } else r.skip(w);
  }
  if (!opType) r.fail(`node ${index} (${name || 'unnamed'}) has no op_type.`);
  return { opType, domain, name: name || `${opType}_${index}`, inputs, outputs, attributes };
}

function readShape(r: Reader): OnnxDim[] {
  const dims: OnnxDim[] = [];
  for (let t = r.tag(); t; t = r.tag()) {
    const [f, w] = t;
    if (f !== 1) {
      r.skip(w);
      continue;
    }
    r.expect(w, 2, 'shape.dim');
    const d = r.sub('shape.dim');
    let dim: OnnxDim = null;
    for (let u = d.tag(); u; u = d.tag()) {
      const [g, x] = u;
      if (g === 1) {
        d.expect(x, 0, 'dim.dim_value');
        const v = d.int64();
        // A negative size is not a size: unknown, as ONNX tools read it.
        dim = v >= 0 ? v : null;
      } else if (g === 2) {
        d.expect(x, 2, 'dim.dim_param');
        dim = d.string('dim.dim_param') || null;
      } else d.skip(x);
    }
    dims.push(dim);
    if (dims.length > ONNX_GRAPH_LIMITS.maxInts)
      r.fail(`a shape has more than ${ONNX_GRAPH_LIMITS.maxInts} dims.`);
  }
  return dims;
}

function readValueInfo(r: Reader): OnnxValueInfo {
  let name = '';
  let shape: OnnxDim[] | undefined;
  let elemType: number | undefined;
  for (let t = r.tag(); t; t = r.tag()) {
    const [f, w] = t;
    if (f === 1) {
      r.expect(w, 2, 'value_info.name');
      name = r.string('value_info.name');
    } else if (f === 2) {
      r.expect(w, 2, 'value_info.type');
      const type = r.sub('type');
      for (let u = type.tag(); u; u = type.tag()) {
        const [g, x] = u;
        if (g !== 1) {
          type.skip(x); // sequence, map, optional: no tensor shape to read
          continue;
        }
        type.expect(x, 2, 'type.tensor_type');
        const tt = type.sub('tensor_type');
        for (let v = tt.tag(); v; v = tt.tag()) {
          const [h, y] = v;
          if (h === 2) {
            tt.expect(y, 2, 'tensor_type.shape');
            shape = readShape(tt.sub('tensor_type.shape'));
          } else if (h === 1) {
            tt.expect(y, 0, 'tensor_type.elem_type');
            elemType = tt.varint();
          } else tt.skip(y);
        }
      }
    } else r.skip(w);
  }
  if (!name) r.fail('a graph input, output or value_info has no name.');
  return { name, ...(shape ? { shape } : {}), ...(elemType !== undefined ? { elemType } : {}) };
}

function readGraph(r: Reader): OnnxGraph {
  const nodes: OnnxGraphNode[] = [];
  const initializers = new Map<string, OnnxTensorInfo>();
  const inputs: OnnxValueInfo[] = [];
  const outputs: OnnxValueInfo[] = [];
  const valueInfo: OnnxValueInfo[] = [];
  let values = 0;
  for (let t = r.tag(); t; t = r.tag()) {
    const [f, w] = t;
    if (f === 1) {
      r.expect(w, 2, 'graph.node');
      if (nodes.length >= ONNX_GRAPH_LIMITS.maxNodes) {
        r.fail(`the graph has more than ${ONNX_GRAPH_LIMITS.maxNodes} nodes.`);
      }
      nodes.push(readNode(r.sub(`graph.node[${nodes.length}]`), nodes.length));
    } else if (f === 5) {
      r.expect(w, 2, 'graph.initializer');
      if (initializers.size >= ONNX_GRAPH_LIMITS.maxInitializers) {
        r.fail(`the graph has more than ${ONNX_GRAPH_LIMITS.maxInitializers} initializers.`);
      }
      const init = readTensor(r.sub(`graph.initializer[${initializers.size}]`));
      if (!init.name) r.fail('an initializer has no name.');
      initializers.set(init.name, init);
    } else if (f === 11 || f === 12 || f === 13) {
      r.expect(w, 2, 'graph value');
      if (++values > ONNX_GRAPH_LIMITS.maxValues) {
        r.fail(`the graph has more than ${ONNX_GRAPH_LIMITS.maxValues} inputs, outputs and value_info.`);
      }
      const list = f === 11 ? inputs : f === 12 ? outputs : valueInfo;
      const where = f === 11 ? 'graph.input' : f === 12 ? 'graph.output' : 'graph.value_info';
      list.push(readValueInfo(r.sub(`${where}[${list.length}]`)));
    } else r.skip(w);
  }
  return { nodes, initializers, inputs, outputs, valueInfo };
}

/**
 * Reads the main graph of an ONNX model (ModelProto bytes). Throws HearthError('onnx/model')
 * naming the message and byte offset of anything malformed, or 'input/invalid' when `bytes` is
 * not bytes at all.
 *
 * @example
 * const g = readOnnxGraph(new Uint8Array(await file.arrayBuffer()));
 * g.nodes.map((n) => n.opType); // ['MatMul', 'Add', 'Softmax']
 */
export function readOnnxGraph(bytes: Uint8Array | ArrayBuffer): OnnxGraph {
  if (!(bytes instanceof Uint8Array) && !(bytes instanceof ArrayBuffer)) {
    throw new HearthError(
      'input/invalid',
      'readOnnxGraph: expected the model as a Uint8Array or ArrayBuffer.',
    );
  }
  const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const r = new Reader(buf, 0, buf.length, 'model');
  let graph: OnnxGraph | undefined;
  for (let t = r.tag(); t; t = r.tag()) {
    const [f, w] = t;
    if (f === 7) {
      r.expect(w, 2, 'model.graph');
      if (graph) r.fail('the model has two graphs.');
      graph = readGraph(r.sub('graph'));
    } else r.skip(w);
  }
  if (!graph) {
    throw new HearthError('onnx/model', 'ONNX model: no graph (ModelProto field 7) in these bytes.', {
      details: { bytes: buf.length },
    });
  }
  return graph;
}
