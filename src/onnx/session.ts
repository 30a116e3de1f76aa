// A cache of onnxruntime-web sessions keyed by the model's SHA-256 and the backend. Making a
// session (parsing, optimising, compiling kernels) costs far more than a run, and a worker runs
// many shards of one model in a row.
//
// onnxruntime-web is not re-entrant, and less so than its docs suggest: its browser build with
// the WebGPU EP (asyncify) refuses to create two sessions at once ("another WebGPU EP inference
// session is being created") and fails or hangs when runs of two sessions overlap ("Failed to
// download data from buffer"). So every call into one onnxruntime-web module (create, run,
// release) goes through one promise chain: per session that is creation first, then each run
// behind the one before; across sessions, nothing overlaps. Nothing is lost by it: the wasm EP
// runs on this one thread anyway.
import type { InferenceSession } from 'onnxruntime-web';
import { first } from '../core/at.ts';
import { HearthError } from '../core/errors.ts';
import { isSha256Hex, sha256Hex } from '../core/hash.ts';
import type { OnnxBackend } from '../protocol/shard.ts';
import { sessionCreateError } from './errors.ts';
import { loadOrt, type OrtModule } from './ort.ts';

/** The largest model a worker loads (bytes): a tab holds it in memory once or twice over. */
export const MAX_MODEL_BYTES = 512 * 1024 * 1024;
/** Sessions kept at once; the least recently used goes first. */
export const MAX_CACHED_SESSIONS = 4;

/** A model input or output as the session reports it. */
export interface OnnxSessionValue {
  readonly name: string;
  /** ORT's element type ('float32', 'int64', …), or 'non-tensor' for sequences and maps. */
  readonly type: string;
  /** Fixed sizes as numbers, symbolic ones ('batch') as strings; empty when unknown. */
  readonly shape: readonly (number | string)[];
}

/** A cached session: what the model takes and gives, and a queue to run it in. */
export interface OnnxSession {
  readonly modelHash: string;
  readonly backend: OnnxBackend;
  readonly inputs: readonly OnnxSessionValue[];
  readonly outputs: readonly OnnxSessionValue[];
  /** The onnxruntime-web module the session came from: tensors fed to it must be made with it. */
  readonly ort: OrtModule;
  /**
   * Runs `fn` with the session once every earlier call into onnxruntime-web (this session's or
   * another's) has settled, so that no two overlap. Rejects with 'onnx/run' once the session
   * was released.
   */
  exclusive<T>(fn: (session: InferenceSession) => Promise<T>): Promise<T>;
}

class CachedSession implements OnnxSession {
  readonly modelHash: string;
  readonly backend: OnnxBackend;
  readonly inputs: readonly OnnxSessionValue[];
  readonly outputs: readonly OnnxSessionValue[];
  readonly ort: OrtModule;
  private readonly session: InferenceSession;
  private released = false;

  constructor(modelHash: string, backend: OnnxBackend, ort: OrtModule, session: InferenceSession) {
    this.modelHash = modelHash;
    this.backend = backend;
    this.ort = ort;
    this.session = session;
    this.inputs = describe(session.inputNames, session.inputMetadata);
    this.outputs = describe(session.outputNames, session.outputMetadata);
  }

  exclusive<T>(fn: (session: InferenceSession) => Promise<T>): Promise<T> {
    if (this.released) {
      return Promise.reject(
        new HearthError(
          'onnx/run',
          `The session for model ${this.modelHash.slice(0, 12)}… was released; get it again with getSession.`,
          { details: { model: this.modelHash, backend: this.backend, released: true } },
        ),
      );
    }
    return serial(this.ort, () => fn(this.session));
  }

  /** Frees the session once the runs queued so far have settled. */
  release(): Promise<void> {
    if (this.released) return Promise.resolve();
    const done = this.exclusive((s) => s.release()).catch(() => undefined);
    this.released = true;
    return done;
  }
}

// One chain per onnxruntime-web module (normally there is one).
const queues = new WeakMap<OrtModule, Promise<unknown>>();

/** Runs `fn` after every earlier call queued on `ort` has settled. */
function serial<T>(ort: OrtModule, fn: () => Promise<T>): Promise<T> {
  const next = (queues.get(ort) ?? Promise.resolve()).then(fn);
  queues.set(
    ort,
    next.then(
      () => undefined,
      () => undefined,
    ),
  );
  return next;
}

function describe(
  names: readonly string[],
  meta: readonly { name: string; isTensor: boolean; type?: string; shape?: readonly (number | string)[] }[],
): OnnxSessionValue[] {
  return names.map((name, i) => {
    const m = meta?.find((x) => x.name === name) ?? meta?.[i];
    if (!m) return { name, type: 'unknown', shape: [] };
    if (!m.isTensor) return { name, type: 'non-tensor', shape: [] };
    return { name, type: m.type ?? 'unknown', shape: [...(m.shape ?? [])] };
  });
}

// Insertion order is recency order: a hit moves its key to the end.
const cache = new Map<string, Promise<CachedSession>>();

function evictOverflow(): void {
  while (cache.size > MAX_CACHED_SESSIONS) {
    const [key, oldest] = first(cache, 'session cache');
    cache.delete(key);
    oldest.then(
      (s) => s.release(),
      () => undefined,
    );
  }
}

/** Model bytes, or a loader called only when no cached session exists (a blob-cache read). */
export type ModelSource = Uint8Array | (() => Promise<Uint8Array>);

async function create(modelHash: string, source: ModelSource, backend: OnnxBackend): Promise<CachedSession> {
  const bytes = typeof source === 'function' ? await source() : source;
  if (bytes.byteLength > MAX_MODEL_BYTES) {
    throw new HearthError(
      'onnx/model',
      `ONNX model ${modelHash.slice(0, 12)}… is ${bytes.byteLength} bytes, over the ${MAX_MODEL_BYTES}-byte limit for a model in a worker.`,
      { details: { model: modelHash, bytes: bytes.byteLength, limit: MAX_MODEL_BYTES } },
    );
  }
  const got = await sha256Hex(bytes);
  if (got !== modelHash) {
    throw new HearthError(
      'blob/corrupt',
      `The model bytes do not match their hash: expected SHA-256 ${modelHash}, got ${got}. Fetch the model again.`,
      { details: { expected: modelHash, got, bytes: bytes.byteLength } },
    );
  }
  const ort = await loadOrt();
  let session: InferenceSession;
  try {
    // Failures come back as HearthErrors; ORT printing them to stderr as well is noise (4: fatal only).
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: [backend],
      logSeverityLevel: 4,
    });
  } catch (e) {
    throw sessionCreateError(e, modelHash, backend);
  }
  return new CachedSession(modelHash, backend, ort, session);
}

/**
 * The session for a model on a backend: from the cache when one exists (then `bytes` are not
 * read), otherwise made from `bytes` after checking them against `modelHash`. Callers asking
 * for the same model at once share one creation, which queues behind any run in progress.
 *
 * Throws HearthError 'input/invalid' (not a SHA-256), 'blob/corrupt' (bytes ≠ hash),
 * 'onnx/model' (too large, or not a valid model), 'onnx/unsupported' (an operator or opset
 * this onnxruntime-web lacks) or 'gpu/unavailable' (the WebGPU EP could not start).
 *
 * @example
 * const s = await getSession(shard.model, modelBytes, 'wasm');
 * const out = await s.exclusive((session) => session.run(feeds));
 */
export function getSession(
  modelHash: string,
  bytes: ModelSource,
  backend: OnnxBackend,
): Promise<OnnxSession> {
  if (!isSha256Hex(modelHash)) {
    return Promise.reject(
      new HearthError(
        'input/invalid',
        'model: expected the SHA-256 of the model as 64 lowercase hex digits.',
        {
          details: { path: 'model' },
        },
      ),
    );
  }
  const key = `${backend}:${modelHash}`;
  let p = cache.get(key);
  if (p) {
    cache.delete(key);
    cache.set(key, p);
    return p;
  }
  p = create(modelHash, bytes, backend);
  cache.set(key, p);
  const mine = p;
  p.catch(() => {
    if (cache.get(key) === mine) cache.delete(key);
  });
  evictOverflow();
  return p;
}

/**
 * Empties the cache and frees every session once its queued runs have settled (after a lost
 * device, or to give memory back).
 *
 * @example
 * await releaseSessions();
 */
export async function releaseSessions(): Promise<void> {
  const all = [...cache.values()];
  cache.clear();
  await Promise.all(
    all.map((p) =>
      p.then(
        (s) => s.release(),
        () => undefined,
      ),
    ),
  );
}
