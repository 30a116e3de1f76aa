// Compressed pseudo-gradients: the bytes a `train` volunteer sends for its Δ = θ − θ_local, and
// the error feedback that makes lossy codecs converge (what a codec drops this round is added
// to next round's Δ before it is encoded, so nothing is lost, only delayed). Pure TypeScript,
// deterministic: the same Δ and residual give the same bytes on every machine.
//
// Averaging compressed Δs: the ring all-reduce (net/allreduce.ts) adds partial sums hop by hop;
// with compression every hop would decode, add and re-encode, losing precision at each of its
// G − 1 hops, and an auditor could no longer recompute what one member contributed from its
// frame alone. So compressed Δs are all-gathered: each member sends its own frame (bytes it
// alone produced and signs) to the others, and every member — and the hub — decodes the G
// frames and adds them in group order, in f32 (`decodeAdd`), getting the same bits. The frames
// are small (topk at 1%: ~1.5 bytes per kept entry), so G − 1 copies cost far less than one
// dense ring pass. The dense `none` codec may still use the ring.
//
// Frame layout, little-endian (offsets in bytes):
//   0  u8   magic 0x44 ('D')
//   1  u8   PSEUDO_GRADIENT_VERSION (1)
//   2  u8   codec: 0 none, 1 int8, 2 4bit, 3 topk
//   3  u8   zero (reserved)
//   4  u32  n: elements of the dense vector (≤ MAX_ELEMENTS)
//   8  u32  chunk: values per scale (int8, 4bit: of the dense vector; topk: of the kept values); none: 0
//  12  u32  k: kept entries (topk; else 0)
//  16  u32  payload bytes P (the frame is 24 + P bytes)
//  20  u32  zero (reserved)
//  24  payload:
//      none  4·n   f32 values
//      int8  4·⌈n/chunk⌉ f32 scales (≥ 0, finite), then n i8 codes q ∈ [−127, 127]: value q·scale/127
//      4bit  4·⌈n/chunk⌉ f32 scales, then ⌈n/2⌉ bytes, two codes each (element 2i in the low
//            nibble), nibble c ∈ [1, 15] ↦ q = c − 8 ∈ [−7, 7]: value q·scale/7; a pad nibble is 8
//      topk  4·⌈k/chunk⌉ f32 scales, then ⌈k/4⌉ bytes of 2-bit codes (entry 4i in the low bits)
//            c ∈ {0,1,2,3} ↦ {−1, −⅓, ⅓, 1}·scale (pad codes 0), then the k indices as LEB128
//            varints of their gaps (the first index itself, then index − previous − 1), strictly
//            increasing and < n
import { HearthError } from '../core/errors.ts';

export const PSEUDO_GRADIENT_VERSION = 1;
const MAGIC = 0x44;
const HEADER = 24;
/** Largest dense vector a frame may describe (f32 elements). */
export const MAX_ELEMENTS = 1 << 28;
/** Largest chunk a frame may name. */
export const MAX_CHUNK = 1 << 20;

export type CodecName = 'none' | 'int8' | '4bit' | 'topk';
const CODE: Readonly<Record<CodecName, number>> = { none: 0, int8: 1, '4bit': 2, topk: 3 };
const NAME: readonly CodecName[] = ['none', 'int8', '4bit', 'topk'];

/** A codec and its parameters. */
export type Compression =
  | { readonly codec: 'none' }
  | { readonly codec: 'int8' | '4bit'; readonly chunk?: number }
  | { readonly codec: 'topk'; readonly density: number; readonly chunk?: number };

/** Values per scale when a compression names none: small enough that one outlier spoils little. */
export const DEFAULT_CHUNK = 256;
const TOPK_LEVELS = [-1, -1 / 3, 1 / 3, 1] as const;

function frameError(message: string, details: Record<string, unknown> = {}): HearthError {
  return new HearthError('train/frame', `pseudo-gradient frame: ${message}`, { details });
}

function chunkOf(c: Compression): number {
  const chunk = c.codec === 'none' ? 0 : (c.chunk ?? DEFAULT_CHUNK);
  if (c.codec !== 'none' && !(Number.isInteger(chunk) && chunk >= 1 && chunk <= MAX_CHUNK)) {
    throw new HearthError(
      'train/config',
      `compression chunk must be an integer from 1 to ${MAX_CHUNK}, got ${chunk}.`,
      {
        details: { chunk },
      },
    );
  }
  return chunk;
}

/** Kept entries of topk at `density` for n elements: at least 1 (n > 0). */
export function topkCount(n: number, density: number): number {
  if (!(density > 0 && density <= 1)) {
    throw new HearthError('train/config', `topk density must be in (0, 1], got ${density}.`, {
      details: { density },
    });
  }
  return n === 0 ? 0 : Math.max(1, Math.min(n, Math.round(n * density)));
}

function header(codec: CodecName, n: number, chunk: number, k: number, payload: number): Uint8Array {
  const out = new Uint8Array(HEADER + payload);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, MAGIC);
  dv.setUint8(1, PSEUDO_GRADIENT_VERSION);
  dv.setUint8(2, CODE[codec]);
  dv.setUint32(4, n, true);
  dv.setUint32(8, chunk, true);
  dv.setUint32(12, k, true);
  dv.setUint32(16, payload, true);
  return out;
}

function maxAbs(x: Float32Array, from: number, to: number): number {
  let m = 0;
  for (let i = from; i < to; i++) m = Math.max(m, Math.abs(x[i] as number));
  return Math.fround(m);
}

/**
 * Encodes `x` (the dense Δ, plus any error-feedback residual) as a frame. Non-finite values are
 * refused: a diverged worker must say so, not ship NaN.
 *
 * @example
 * const frame = encodePseudoGradient(delta, { codec: 'topk', density: 0.01 });
 */
export function encodePseudoGradient(x: Float32Array, c: Compression): Uint8Array {
  const n = x.length;
  if (n > MAX_ELEMENTS) throw frameError(`${n} elements exceed the limit of ${MAX_ELEMENTS}.`, { n });
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(x[i] as number)) {
      throw new HearthError(
        'train/diverged',
        `the pseudo-gradient holds ${x[i]} at element ${i}: the inner loop diverged.`,
        {
          details: { index: i },
        },
      );
    }
  }
  const chunk = chunkOf(c);
  if (c.codec === 'none') {
    const out = header('none', n, 0, 0, 4 * n);
    new Uint8Array(out.buffer, HEADER).set(new Uint8Array(x.buffer, x.byteOffset, 4 * n));
    return out;
  }
  if (c.codec === 'int8' || c.codec === '4bit') {
    const levels = c.codec === 'int8' ? 127 : 7;
    const chunks = Math.ceil(n / chunk);
    const codeBytes = c.codec === 'int8' ? n : Math.ceil(n / 2);
    const out = header(c.codec, n, chunk, 0, 4 * chunks + codeBytes);
    const dv = new DataView(out.buffer);
    const codes = HEADER + 4 * chunks;
    if (c.codec === '4bit') out.fill(0x88, codes);
    for (let ch = 0; ch < chunks; ch++) {
      const from = ch * chunk;
      const to = Math.min(n, from + chunk);
      const s = maxAbs(x, from, to);
      dv.setFloat32(HEADER + 4 * ch, s, true);
      for (let i = from; i < to; i++) {
        const q =
          s === 0 ? 0 : Math.max(-levels, Math.min(levels, Math.round(((x[i] as number) / s) * levels)));
        if (c.codec === 'int8') dv.setInt8(codes + i, q);
        else {
          const at = codes + (i >> 1);
          const nib = q + 8;
          const b = out[at] as number;
          out[at] = i & 1 ? (b & 0x0f) | (nib << 4) : (b & 0xf0) | nib;
        }
      }
    }
    return out;
  }
  if (c.codec !== 'topk') throw new Error(`unreachable codec ${c.codec}`);
  return encodeTopk(x, c.density, chunk);
}

/** topk: the k largest |x|, ties to the lower index, sent in index order. */
function encodeTopk(x: Float32Array, density: number, chunk: number): Uint8Array {
  const n = x.length;
  const k = topkCount(n, density);
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => Math.abs(x[b] as number) - Math.abs(x[a] as number) || a - b);
  const kept = Int32Array.from(order.slice(0, k)).sort();
  const gaps: number[] = [];
  let prev = -1;
  for (const i of kept) {
    let g = i - prev - 1;
    prev = i;
    do {
      gaps.push((g & 0x7f) | (g >= 0x80 ? 0x80 : 0));
      g >>>= 7;
    } while (g > 0);
  }
  const chunks = Math.ceil(k / chunk);
  const codeBytes = Math.ceil(k / 4);
  const out = header('topk', n, chunk, k, 4 * chunks + codeBytes + gaps.length);
  const dv = new DataView(out.buffer);
  const codes = HEADER + 4 * chunks;
  for (let ch = 0; ch < chunks; ch++) {
    let s = 0;
    for (let j = ch * chunk; j < Math.min(k, (ch + 1) * chunk); j++)
      s = Math.max(s, Math.abs(x[kept[j] as number] as number));
    s = Math.fround(s);
    dv.setFloat32(HEADER + 4 * ch, s, true);
    for (let j = ch * chunk; j < Math.min(k, (ch + 1) * chunk); j++) {
      const v = s === 0 ? 0 : (x[kept[j] as number] as number) / s;
      // Nearest of the four levels −1, −⅓, ⅓, 1.
      const c2 = v < -2 / 3 ? 0 : v < 0 ? 1 : v < 2 / 3 ? 2 : 3;
      out[codes + (j >> 2)] = (out[codes + (j >> 2)] as number) | (c2 << (2 * (j & 3)));
    }
  }
  out.set(gaps, codes + codeBytes);
  return out;
}

/** A frame's header fields, checked. */
export interface FrameInfo {
  readonly codec: CodecName;
  readonly n: number;
  readonly chunk: number;
  readonly k: number;
}

/** Reads and checks a frame's header (and its total length); 'train/frame' naming the bad field. */
export function frameInfo(frame: Uint8Array, expectedElements?: number): FrameInfo {
  if (frame.byteLength < HEADER)
    throw frameError(`${frame.byteLength} bytes is shorter than the ${HEADER}-byte header.`);
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (dv.getUint8(0) !== MAGIC)
    throw frameError(`bad magic 0x${dv.getUint8(0).toString(16)}; not a pseudo-gradient.`);
  const version = dv.getUint8(1);
  if (version !== PSEUDO_GRADIENT_VERSION) {
    throw frameError(
      `version ${version}; this build reads version ${PSEUDO_GRADIENT_VERSION}. Update the page.`,
      {
        version,
      },
    );
  }
  const codec = NAME[dv.getUint8(2)];
  if (!codec) throw frameError(`unknown codec ${dv.getUint8(2)}.`, { codec: dv.getUint8(2) });
  if (dv.getUint8(3) !== 0 || dv.getUint32(20, true) !== 0) throw frameError('reserved bytes are not zero.');
  const n = dv.getUint32(4, true);
  const chunk = dv.getUint32(8, true);
  const k = dv.getUint32(12, true);
  const payload = dv.getUint32(16, true);
  if (n > MAX_ELEMENTS) throw frameError(`n = ${n} exceeds the limit of ${MAX_ELEMENTS}.`, { n });
  if (expectedElements !== undefined && n !== expectedElements) {
    throw frameError(`it holds ${n} elements; the model has ${expectedElements}.`, { n, expectedElements });
  }
  if (codec === 'none' ? chunk !== 0 : chunk < 1 || chunk > MAX_CHUNK) {
    throw frameError(`chunk ${chunk} is out of range for codec ${codec}.`, { chunk });
  }
  if (codec === 'topk' ? k < (n > 0 ? 1 : 0) || k > n : k !== 0) {
    throw frameError(`k = ${k} is out of range for codec ${codec} with n = ${n}.`, { k, n });
  }
  if (payload !== frame.byteLength - HEADER) {
    throw frameError(`the header says ${payload} payload bytes but ${frame.byteLength - HEADER} follow.`, {
      payload,
    });
  }
  const fixed =
    codec === 'none'
      ? 4 * n
      : codec === 'int8'
        ? 4 * Math.ceil(n / chunk) + n
        : codec === '4bit'
          ? 4 * Math.ceil(n / chunk) + Math.ceil(n / 2)
          : 4 * Math.ceil(k / chunk) + Math.ceil(k / 4) + k;
  if (codec === 'topk' ? payload < fixed || payload > fixed + 4 * k : payload !== fixed) {
    throw frameError(
      `${payload} payload bytes do not fit codec ${codec} with n = ${n}, chunk = ${chunk}, k = ${k}.`,
      {
        payload,
      },
    );
  }
  return { codec, n, chunk, k };
}

function scaleAt(dv: DataView, ch: number): number {
  const s = dv.getFloat32(HEADER + 4 * ch, true);
  if (!(Number.isFinite(s) && s >= 0))
    throw frameError(`scale ${ch} is ${s}; scales are finite and ≥ 0.`, { chunk: ch });
  return s;
}

/**
 * Adds the frame's decoded vector into `acc` (f32, in element order: every member that adds the
 * same frames in the same order gets the same bits). Checks the whole frame first, so a bad
 * frame changes nothing.
 */
export function decodeAdd(frame: Uint8Array, acc: Float32Array): void {
  const dense = decodePseudoGradient(frame, acc.length);
  for (let i = 0; i < acc.length; i++) acc[i] = Math.fround((acc[i] as number) + (dense[i] as number));
}

/** Decodes a frame to its dense vector; `expectedElements` (the model's size) is enforced. */
export function decodePseudoGradient(frame: Uint8Array, expectedElements?: number): Float32Array {
  const { codec, n, chunk, k } = frameInfo(frame, expectedElements);
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const out = new Float32Array(n);
  if (codec === 'none') {
    for (let i = 0; i < n; i++) {
      const v = dv.getFloat32(HEADER + 4 * i, true);
      if (!Number.isFinite(v)) throw frameError(`element ${i} is ${v}.`, { index: i });
      out[i] = v;
    }
    return out;
  }
  if (codec === 'int8' || codec === '4bit') {
    const levels = codec === 'int8' ? 127 : 7;
    const chunks = Math.ceil(n / chunk);
    const codes = HEADER + 4 * chunks;
    for (let ch = 0; ch < chunks; ch++) {
      const s = scaleAt(dv, ch);
      for (let i = ch * chunk; i < Math.min(n, (ch + 1) * chunk); i++) {
        let q: number;
        if (codec === 'int8') {
          q = dv.getInt8(codes + i);
          if (q < -127) throw frameError(`code −128 at element ${i}; codes are −127 … 127.`, { index: i });
        } else {
          const b = dv.getUint8(codes + (i >> 1));
          const nib = i & 1 ? b >> 4 : b & 0x0f;
          if (nib === 0) throw frameError(`nibble 0 at element ${i}; nibbles are 1 … 15.`, { index: i });
          q = nib - 8;
        }
        out[i] = Math.fround((q * s) / levels);
      }
    }
    return out;
  }
  const chunks = Math.ceil(k / chunk);
  const codes = HEADER + 4 * chunks;
  let at = codes + Math.ceil(k / 4);
  let prev = -1;
  for (let j = 0; j < k; j++) {
    let gap = 0;
    for (let shift = 0; ; shift += 7) {
      if (at >= frame.byteLength) throw frameError(`the index list ends inside entry ${j}.`, { entry: j });
      if (shift > 28) throw frameError(`the gap of entry ${j} is longer than 5 bytes.`, { entry: j });
      const b = dv.getUint8(at++);
      gap += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) break;
    }
    const i = prev + 1 + gap;
    if (i >= n) throw frameError(`entry ${j} names index ${i}, past n = ${n}.`, { entry: j, index: i });
    prev = i;
    const s = scaleAt(dv, Math.floor(j / chunk));
    const c2 = (dv.getUint8(codes + (j >> 2)) >> (2 * (j & 3))) & 3;
    out[i] = Math.fround((TOPK_LEVELS[c2] as number) * s);
  }
  if (at !== frame.byteLength) {
    throw frameError(`${frame.byteLength - at} bytes follow the last index.`, {
      trailing: frame.byteLength - at,
    });
  }
  return out;
}

/**
 * Error feedback, kept by the volunteer across rounds: each round it encodes Δ + residual and
 * keeps as the new residual what the frame did not carry, (Δ + residual) − decode(frame). So
 * Σ_rounds decode(frame) + residual = Σ_rounds Δ: the codec only delays what it drops.
 *
 * @example
 * const ef = new ErrorFeedback(paramCount(cfg));
 * const frame = ef.encode(delta, { codec: 'topk', density: 0.01 });
 */
export class ErrorFeedback {
  readonly residual: Float32Array;

  constructor(size: number) {
    this.residual = new Float32Array(size);
  }

  encode(delta: Float32Array, c: Compression): Uint8Array {
    if (delta.length !== this.residual.length) {
      throw new HearthError(
        'train/layout',
        `Δ has ${delta.length} elements; the residual ${this.residual.length}.`,
        {
          details: { delta: delta.length, residual: this.residual.length },
        },
      );
    }
    const x = new Float32Array(delta.length);
    for (let i = 0; i < x.length; i++)
      x[i] = Math.fround((delta[i] as number) + (this.residual[i] as number));
    const frame = encodePseudoGradient(x, c);
    if (c.codec === 'none') {
      this.residual.fill(0);
      return frame;
    }
    const sent = decodePseudoGradient(frame, x.length);
    for (let i = 0; i < x.length; i++) this.residual[i] = Math.fround((x[i] as number) - (sent[i] as number));
    return frame;
  }
}
