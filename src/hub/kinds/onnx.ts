// The `onnx` kind on the hub: a batch input split into row ranges; honeypots are batches the hub
// ran itself; at submit the model is read (a bounded protobuf reader, no onnxruntime) to count its
// FLOPs, refuse weights kept outside the file, and check the manifest's inputs against the
// graph's (names, dtypes, fixed dims).
import { HearthError, isHearthError } from '../../core/errors.ts';
import { sha256Hex } from '../../core/hash.ts';
import type { DType } from '../../core/tensor.ts';
import { countJobFlops } from '../../protocol/flops.ts';
import { batchOf, type OnnxHoneypot, type OnnxManifest, type OnnxWork } from '../../protocol/kinds/onnx.ts';
import type { TensorBlob } from '../../protocol/manifest.ts';
import { type OnnxGraph, readOnnxGraph } from '../../protocol/onnx-graph.ts';
import type { HubKind, PlannedShard } from './kind.ts';
import { replicaValidation } from './replicas.ts';

// TensorProto.DataType codes each Hearth dtype may feed (int64 inputs take i32: widened exactly).
const ACCEPTS: Record<DType, readonly number[]> = { f32: [1], f16: [10], i32: [6, 7], u32: [12] };
const ONNX_TYPE_NAMES: Record<number, string> = {
  1: 'float',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'double',
  12: 'uint32',
  13: 'uint64',
  16: 'bfloat16',
};

function plan(m: OnnxManifest): PlannedShard<OnnxWork>[] {
  const { rows } = batchOf(m);
  const out: PlannedShard<OnnxWork>[] = [];
  for (let start = 0; start < rows; start += m.shardSize) {
    out.push({
      work: {
        kind: 'onnx',
        model: m.model,
        inputs: m.inputs,
        batchInput: m.batchInput,
        rows: [start, Math.min(rows, start + m.shardSize)],
      },
    });
  }
  for (const h of m.honeypots ?? []) {
    out.push({
      work: { kind: 'onnx', model: m.model, inputs: h.inputs, batchInput: m.batchInput },
      expected: h.expected,
    });
  }
  return out;
}

const refuse = (code: 'onnx/model' | 'onnx/unsupported' | 'input/invalid', path: string, message: string) =>
  new HearthError(code, `${path}: ${message}`, { details: { path } });

/** The manifest's inputs against the graph's: every graph input given, each dtype and fixed dim. */
function checkInputs(m: OnnxManifest, graph: OnnxGraph): void {
  const declared = graph.inputs.filter((i) => !graph.initializers.has(i.name));
  const check = (inputs: Readonly<Record<string, TensorBlob>>, path: string, batchRows: boolean) => {
    for (const name of Object.keys(inputs)) {
      if (!graph.inputs.some((i) => i.name === name)) {
        throw refuse(
          'input/invalid',
          `${path}.${name}`,
          `the model has no input "${name}" (its inputs: ${declared.map((i) => i.name).join(', ') || 'none'}).`,
        );
      }
    }
    for (const d of declared) {
      const t = inputs[d.name];
      if (!t)
        throw refuse(
          'input/invalid',
          path,
          `the model needs an input "${d.name}" that the manifest does not give.`,
        );
      if (d.elemType !== undefined && !ACCEPTS[t.dtype].includes(d.elemType)) {
        throw refuse(
          'input/invalid',
          `${path}.${d.name}.dtype`,
          `the model declares "${d.name}" as ${ONNX_TYPE_NAMES[d.elemType] ?? `type ${d.elemType}`}, the manifest gives ${t.dtype}.`,
        );
      }
      if (!d.shape) continue;
      if (d.shape.length !== t.shape.length) {
        throw refuse(
          'input/invalid',
          `${path}.${d.name}.shape`,
          `the model declares "${d.name}" with ${d.shape.length} dims, the manifest gives [${t.shape.join(', ')}].`,
        );
      }
      d.shape.forEach((dim, i) => {
        // The batch input's dim 0 is cut into shards: the model must take any size there.
        if (typeof dim !== 'number' || (batchRows && d.name === m.batchInput && i === 0)) return;
        if (dim !== t.shape[i]) {
          throw refuse(
            'input/invalid',
            `${path}.${d.name}.shape[${i}]`,
            `the model declares "${d.name}" dim ${i} as ${dim}, the manifest gives ${t.shape[i]}.`,
          );
        }
      });
    }
  };
  check(m.inputs, 'manifest.inputs', true);
  for (const [i, h] of (m.honeypots ?? []).entries())
    check(h.inputs, `manifest.honeypots[${i}].inputs`, true);
}

async function prepare(
  m: OnnxManifest,
  env: { blob(sha: string): Uint8Array | undefined },
): Promise<OnnxManifest> {
  const bytes = env.blob(m.model);
  if (!bytes)
    throw new HearthError('blob/missing', `manifest.model: blob ${m.model} (the model) is not uploaded.`);
  let graph: OnnxGraph;
  try {
    graph = readOnnxGraph(bytes);
  } catch (e) {
    if (isHearthError(e))
      throw new HearthError(e.code, `manifest.model: ${e.message}`, { details: e.details });
    throw e;
  }
  const external = [...graph.initializers.values()].find((t) => t.external);
  if (external) {
    // Hearth ships one .onnx blob per model: a weights file beside it has no manifest field and
    // would never reach a volunteer.
    throw refuse(
      'onnx/unsupported',
      'manifest.model',
      `initializer "${external.name}" keeps its data in an external file, which Hearth does not ship; save the model with its weights inside (onnx.save_model(model, path, save_as_external_data=False)), up to 2 GiB.`,
    );
  }
  checkInputs(m, graph);
  try {
    return { ...m, flopsByRows: countJobFlops(m, bytes) };
  } catch (e) {
    // A graph that cannot be counted runs on the researcher's declared FLOPs, when there are some.
    if (isHearthError(e, 'onnx/unsupported') && m.flopsPerShard !== undefined) return m;
    if (isHearthError(e))
      throw new HearthError(e.code, `manifest.model: ${e.message}`, { details: e.details });
    throw e;
  }
}

/** The `onnx` kind on the hub (registered in ./index.ts). */
export const onnxHub: HubKind<OnnxManifest, OnnxWork> = {
  kind: 'onnx',
  // onnxruntime-web runs it on WebAssembly where there is no WebGPU.
  needsGpu: false,
  plan,
  prepare,
  // ONNX outputs are whatever the model gives; replicas compare them by name.
  checkOutputs: () => {},
  async addHoneypots(m, n, env) {
    const { tensor: batch, rows } = batchOf(m);
    const starts = env.pick(Math.ceil(rows / m.shardSize), n).map((s) => s * m.shardSize);
    const honeypots: OnnxHoneypot[] = [];
    for (const [k, start] of starts.entries()) {
      const end = Math.min(rows, start + m.shardSize);
      const r = await env.run(
        { kind: 'onnx', model: m.model, inputs: m.inputs, batchInput: m.batchInput, rows: [start, end] },
        k,
      );
      // The honeypot's batch is its own blob, so its work names no rows — like a researcher's.
      const whole = await env.blob(batch.sha256);
      const rowBytes = whole.byteLength / rows;
      const slice = whole.slice(start * rowBytes, end * rowBytes);
      const sha = await env.write(slice);
      if (sha !== (await sha256Hex(slice))) throw new Error('blob write returned the wrong hash');
      const inputs: Record<string, TensorBlob> = {
        ...m.inputs,
        [m.batchInput]: { sha256: sha, dtype: batch.dtype, shape: [end - start, ...batch.shape.slice(1)] },
      };
      honeypots.push({ inputs, expected: await env.expectedOf(r) });
    }
    return { ...m, honeypots: [...(m.honeypots ?? []), ...honeypots] };
  },
  validate: replicaValidation,
  jobWideErrors: new Set(['onnx/model']),
};
