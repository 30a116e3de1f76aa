// The baseline of bench/worker: the same onnxruntime-web build Hearth loads, a bare
// InferenceSession in a module worker, and nothing else — no protocol, store or hashing.
import * as ort from 'onnxruntime-web/webgpu';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';
let session: ort.InferenceSession | null = null;

self.onmessage = async (ev: MessageEvent) => {
  const m = ev.data as
    | { cmd: 'load'; model: Uint8Array; ep: string }
    | { cmd: 'run'; x: ArrayBuffer; shape: number[] };
  if (m.cmd === 'load') {
    session = await ort.InferenceSession.create(m.model, { executionProviders: [m.ep] });
    self.postMessage({ ok: true });
    return;
  }
  const x = new ort.Tensor('float32', new Float32Array(m.x), m.shape);
  const out = await session!.run({ x });
  const y = (await out.y!.getData()) as Float32Array;
  const buf = y.buffer.slice(y.byteOffset, y.byteOffset + y.byteLength) as ArrayBuffer;
  (self as unknown as Worker).postMessage({ ok: true, y: buf }, [buf]);
};
