// The data plane's wire format: binary frames on a PeerJS DataConnection opened with
// `serialization: 'raw'`, one frame per DataChannel message. Pure encode/decode and bounds
// checks, no I/O; src/net drives it.
//
// Every frame starts with the same 8 bytes, little-endian:
//   0  u8   magic 0x48 ('H') — a stray message from some other protocol fails here, loudly
//   1  u8   STREAM_PROTOCOL_VERSION
//   2  u8   frame type (FRAME_TYPE)
//   3  u8   flags, 0 in version 1 (reserved so a later version can add some)
//   4  u32  stream id
// followed by a fixed body per type (a piece's payload is the rest of the message). Fixed binary
// fields rather than JSON so a piece costs 12 bytes of framing and a header has nothing
// unbounded to parse. A whole frame never exceeds MAX_FRAME_BYTES: Chromium's SCTP stack closes a
// data channel on a larger message.

import { HearthError } from '../core/errors.ts';
import { isSha256Hex, toHex } from '../core/hash.ts';
import type { DType, Shape } from '../core/tensor.ts';
import { BYTES_PER_ELEMENT } from '../core/tensor.ts';

export const STREAM_PROTOCOL_VERSION = 1;
const MAGIC = 0x48;
const PREFIX_BYTES = 8;

/** Largest DataChannel message Chromium accepts (262144 bytes); every frame fits in it. */
export const MAX_FRAME_BYTES = 262_144;
/** Framing in front of a piece's payload. */
export const PIECE_OVERHEAD_BYTES = PREFIX_BYTES + 4;
/** Largest piece payload: a piece frame of this size is exactly MAX_FRAME_BYTES. */
export const MAX_PIECE_BYTES = MAX_FRAME_BYTES - PIECE_OVERHEAD_BYTES;
/** Smallest piece size a header or request may name (smaller only multiplies overhead). */
export const MIN_PIECE_BYTES = 1024;
/** Default for {@link StreamLimits.maxTotalBytes}: 512 MiB, the blob cache's default budget. */
export const DEFAULT_MAX_STREAM_BYTES = 512 * 1024 * 1024;
/** Most dimensions a tensor header may carry. */
export const MAX_TENSOR_RANK = 8;
/** Longest UTF-8 message an error frame may carry. */
export const MAX_ERROR_MESSAGE_BYTES = 512;

/** Frame type codes (byte 2). */
export const FRAME_TYPE = {
  header: 1,
  piece: 2,
  end: 3,
  request: 4,
  cancel: 5,
  error: 6,
  ping: 7,
  pong: 8,
} as const;
export type FrameType = keyof typeof FRAME_TYPE;
const TYPE_BY_CODE = new Map<number, FrameType>(
  Object.entries(FRAME_TYPE).map(([k, v]) => [v, k as FrameType]),
);

const KIND_CODE = { blob: 1, tensor: 2 } as const;
const DTYPE_CODE: Readonly<Record<DType, number>> = { f32: 1, f16: 2, i32: 3, u32: 4 };
const DTYPE_BY_CODE = new Map<number, DType>(Object.entries(DTYPE_CODE).map(([k, v]) => [v, k as DType]));

/** Why a stream was refused or abandoned, as carried by an error frame. */
export type StreamErrorReason = 'not-found' | 'refused' | 'protocol' | 'too-large' | 'busy';
const REASON_CODE: Readonly<Record<StreamErrorReason, number>> = {
  'not-found': 1,
  refused: 2,
  protocol: 3,
  'too-large': 4,
  busy: 5,
};
const REASON_BY_CODE = new Map<number, StreamErrorReason>(
  Object.entries(REASON_CODE).map(([k, v]) => [v, k as StreamErrorReason]),
);

interface HeaderCommon {
  /** Bytes of the whole blob or tensor (not only of the pieces this stream carries). */
  readonly totalBytes: number;
  /** Bytes per piece; the last piece holds the remainder. */
  readonly pieceSize: number;
  /** Index of the first piece this stream sends: > 0 when resuming. */
  readonly firstPiece: number;
  /** SHA-256 of all `totalBytes` bytes, 64 lowercase hex digits. */
  readonly sha256: string;
}
/** What a stream carries, sent before its pieces. */
export type StreamHeader =
  | (HeaderCommon & { readonly kind: 'blob' })
  | (HeaderCommon & { readonly kind: 'tensor'; readonly dtype: DType; readonly shape: Shape });

/** One decoded frame. `stream` ties pieces, acks and errors to their header or request. */
export type Frame =
  | ({ readonly type: 'header'; readonly stream: number } & StreamHeader)
  | { readonly type: 'piece'; readonly stream: number; readonly index: number; readonly bytes: Uint8Array }
  /** Receiver → sender after the last piece: whether the assembled bytes hashed to `sha256`. */
  | { readonly type: 'end'; readonly stream: number; readonly ok: boolean; readonly sha256: string }
  /**
   * Receiver asks for a blob by hash, pieces [fromPiece, toPiece) in pieces of `pieceSize` (0:
   * sender's choice). Without `toPiece` the sender streams to the blob's end; a `toPiece` past
   * the end is clamped to it, so a requester that does not know the size yet may ask for a range.
   */
  | {
      readonly type: 'request';
      readonly stream: number;
      readonly sha256: string;
      readonly fromPiece: number;
      readonly pieceSize: number;
      readonly toPiece?: number;
    }
  | { readonly type: 'cancel'; readonly stream: number }
  | {
      readonly type: 'error';
      readonly stream: number;
      readonly reason: StreamErrorReason;
      readonly message: string;
    }
  /** Liveness: `stream` is a nonce the pong echoes. */
  | { readonly type: 'ping'; readonly stream: number }
  | { readonly type: 'pong'; readonly stream: number };

/** Bounds a receiver applies while decoding. */
export interface StreamLimits {
  /** Largest `totalBytes` a header may announce. Default {@link DEFAULT_MAX_STREAM_BYTES}. */
  readonly maxTotalBytes?: number;
}

function protocolError(what: string, details: Record<string, unknown> = {}): HearthError {
  return new HearthError('net/protocol', `Bad data-plane frame: ${what}.`, { details });
}

/** Number of pieces a blob of `totalBytes` splits into. */
export function pieceCount(totalBytes: number, pieceSize: number): number {
  return Math.ceil(totalBytes / pieceSize);
}

/** Byte range [start, end) of piece `index`. */
export function pieceRange(
  h: Pick<HeaderCommon, 'totalBytes' | 'pieceSize'>,
  index: number,
): [number, number] {
  const start = index * h.pieceSize;
  return [start, Math.min(start + h.pieceSize, h.totalBytes)];
}

/**
 * Checks a piece against the header of its stream: index within [firstPiece, pieceCount) and
 * exactly the bytes that piece must hold. Throws 'net/protocol' naming what was wrong.
 */
export function checkPiece(h: StreamHeader, index: number, byteLength: number): void {
  const count = pieceCount(h.totalBytes, h.pieceSize);
  if (index < h.firstPiece || index >= count) {
    throw protocolError(`piece ${index} is outside [${h.firstPiece}, ${count})`, {
      field: 'index',
      index,
      firstPiece: h.firstPiece,
      pieceCount: count,
    });
  }
  const [start, end] = pieceRange(h, index);
  if (byteLength !== end - start) {
    throw protocolError(`piece ${index} holds ${byteLength} bytes, expected ${end - start}`, {
      field: 'bytes',
      index,
      got: byteLength,
      expected: end - start,
    });
  }
}

/** Checks header fields that must hold whether the header is being sent or was received. */
export function checkHeader(h: StreamHeader, limits: StreamLimits = {}): void {
  const max = limits.maxTotalBytes ?? DEFAULT_MAX_STREAM_BYTES;
  if (!Number.isSafeInteger(h.totalBytes) || h.totalBytes < 0) {
    throw protocolError(`totalBytes ${h.totalBytes} is not a byte count`, { field: 'totalBytes' });
  }
  if (h.totalBytes > max) {
    throw protocolError(`the stream announces ${h.totalBytes} bytes, more than the limit of ${max}`, {
      field: 'totalBytes',
      totalBytes: h.totalBytes,
      limit: max,
    });
  }
  checkPieceSize(h.pieceSize, false);
  const count = pieceCount(h.totalBytes, h.pieceSize);
  if (!Number.isInteger(h.firstPiece) || h.firstPiece < 0 || h.firstPiece > count) {
    throw protocolError(`firstPiece ${h.firstPiece} is outside [0, ${count}]`, {
      field: 'firstPiece',
      firstPiece: h.firstPiece,
      pieceCount: count,
    });
  }
  if (!isSha256Hex(h.sha256))
    throw protocolError('sha256 is not 64 lowercase hex digits', { field: 'sha256' });
  if (h.kind === 'tensor') {
    if (!DTYPE_CODE[h.dtype]) throw protocolError(`unknown dtype ${String(h.dtype)}`, { field: 'dtype' });
    if (h.shape.length > MAX_TENSOR_RANK) {
      throw protocolError(`rank ${h.shape.length} exceeds ${MAX_TENSOR_RANK}`, { field: 'shape' });
    }
    let elements = 1;
    for (const d of h.shape) {
      if (!Number.isInteger(d) || d < 0 || d > 0xffff_ffff) {
        throw protocolError(`dimension ${d} is not a u32`, { field: 'shape' });
      }
      elements *= d;
    }
    const expected = elements * BYTES_PER_ELEMENT[h.dtype];
    if (expected !== h.totalBytes) {
      throw protocolError(
        `a ${h.dtype} tensor of shape [${h.shape.join(', ')}] holds ${expected} bytes, not ${h.totalBytes}`,
        { field: 'totalBytes', expected, totalBytes: h.totalBytes },
      );
    }
  }
}

function checkPieceSize(size: number, zeroAllowed: boolean): void {
  if (zeroAllowed && size === 0) return;
  if (!Number.isInteger(size) || size < MIN_PIECE_BYTES || size > MAX_PIECE_BYTES) {
    throw protocolError(`piece size ${size} is outside [${MIN_PIECE_BYTES}, ${MAX_PIECE_BYTES}]`, {
      field: 'pieceSize',
      pieceSize: size,
    });
  }
}

/** Why `[fromPiece, toPiece)` is not a range of at least one piece within a u32, if it is not. */
function badRange(fromPiece: number, toPiece: number): string | undefined {
  if (Number.isInteger(toPiece) && toPiece > fromPiece && toPiece <= 0xffff_ffff) return undefined;
  return `toPiece ${toPiece} does not end a range that starts at piece ${fromPiece}`;
}

function checkStreamId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) {
    throw new HearthError('input/invalid', `stream id ${id} is not a u32.`);
  }
}

function hexToBytes(hex: string, out: Uint8Array, at: number): void {
  for (let i = 0; i < 32; i++) out[at + i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
}

function prefix(type: FrameType, stream: number, bodyBytes: number): { buf: Uint8Array; dv: DataView } {
  checkStreamId(stream);
  const buf = new Uint8Array(PREFIX_BYTES + bodyBytes);
  const dv = new DataView(buf.buffer);
  buf[0] = MAGIC;
  buf[1] = STREAM_PROTOCOL_VERSION;
  buf[2] = FRAME_TYPE[type];
  dv.setUint32(4, stream, true);
  return { buf, dv };
}

/**
 * A piece frame: 12 bytes of framing then `bytes` (copied once, into the message).
 *
 * @example
 * conn.send(encodePiece(7, 0, blob.subarray(0, 65536)));
 */
export function encodePiece(stream: number, index: number, bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength > MAX_PIECE_BYTES) {
    throw new HearthError(
      'input/invalid',
      `a piece of ${bytes.byteLength} bytes exceeds ${MAX_PIECE_BYTES}.`,
    );
  }
  const { buf, dv } = prefix('piece', stream, 4 + bytes.byteLength);
  dv.setUint32(8, index, true);
  buf.set(bytes, PIECE_OVERHEAD_BYTES);
  return buf;
}

/**
 * Encodes any frame. Headers are checked first ({@link checkHeader}), so a sender cannot emit
 * what a receiver would reject.
 *
 * @example
 * const bytes = encodeFrame({ type: 'request', stream: 1, sha256, fromPiece: 0, pieceSize: 0 });
 */
export function encodeFrame(f: Frame): Uint8Array {
  switch (f.type) {
    case 'piece':
      return encodePiece(f.stream, f.index, f.bytes);
    case 'header': {
      checkHeader(f, { maxTotalBytes: Number.MAX_SAFE_INTEGER });
      const shape = f.kind === 'tensor' ? f.shape : [];
      const { buf, dv } = prefix('header', f.stream, 52 + 4 * shape.length);
      buf[8] = KIND_CODE[f.kind];
      buf[9] = f.kind === 'tensor' ? DTYPE_CODE[f.dtype] : 0;
      buf[10] = shape.length;
      dv.setUint32(12, f.totalBytes % 2 ** 32, true);
      dv.setUint32(16, Math.floor(f.totalBytes / 2 ** 32), true);
      dv.setUint32(20, f.pieceSize, true);
      dv.setUint32(24, f.firstPiece, true);
      hexToBytes(f.sha256, buf, 28);
      for (const [i, d] of shape.entries()) dv.setUint32(60 + 4 * i, d, true);
      return buf;
    }
    case 'end': {
      const { buf } = prefix('end', f.stream, 36);
      buf[8] = f.ok ? 0 : 1;
      hexToBytes(f.sha256, buf, 12);
      return buf;
    }
    case 'request': {
      if (!isSha256Hex(f.sha256))
        throw new HearthError('input/invalid', 'request: sha256 is not 64 hex digits.');
      checkPieceSize(f.pieceSize, true);
      const bad = f.toPiece === undefined ? undefined : badRange(f.fromPiece, f.toPiece);
      if (bad) throw new HearthError('input/invalid', `request: ${bad}.`);
      // A request for the rest of a blob stays the 48-byte frame of version 1; a range appends
      // its end, so a range-less request is byte for byte what older peers send.
      const { buf, dv } = prefix('request', f.stream, f.toPiece === undefined ? 40 : 44);
      dv.setUint32(8, f.fromPiece, true);
      dv.setUint32(12, f.pieceSize, true);
      hexToBytes(f.sha256, buf, 16);
      if (f.toPiece !== undefined) dv.setUint32(48, f.toPiece, true);
      return buf;
    }
    case 'error': {
      const text = new TextEncoder().encode(f.message);
      // Cut on a byte boundary; the decoder replaces a split code point rather than failing.
      const msg = text.subarray(0, MAX_ERROR_MESSAGE_BYTES);
      const { buf, dv } = prefix('error', f.stream, 4 + msg.byteLength);
      dv.setUint16(8, REASON_CODE[f.reason], true);
      dv.setUint16(10, msg.byteLength, true);
      buf.set(msg, 12);
      return buf;
    }
    case 'cancel':
    case 'ping':
    case 'pong':
      return prefix(f.type, f.stream, 0).buf;
  }
}

function asBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const what = typeof data === 'string' ? `a string of ${data.length} characters` : typeof data;
  throw protocolError(`expected binary data, got ${what}`, { field: 'message' });
}

function expectLength(type: FrameType, got: number, expected: number): void {
  if (got !== expected) {
    throw protocolError(`a ${type} frame is ${got} bytes, expected ${expected}`, {
      field: 'length',
      type,
      got,
    });
  }
}

/**
 * Decodes one DataChannel message. Validates magic, version, type, flags, exact lengths, header
 * bounds ({@link checkHeader} with `limits`), error-frame text; a piece's range against its
 * stream is checked by the caller with {@link checkPiece}. Throws only HearthError
 * ('net/protocol', details.field naming the bad field). A piece's `bytes` is a view into `data`.
 *
 * @example
 * conn.on('data', (d) => {
 *   const f = decodeFrame(d, { maxTotalBytes: 64 << 20 });
 *   if (f.type === 'piece') ...
 * });
 */
export function decodeFrame(data: unknown, limits: StreamLimits = {}): Frame {
  const b = asBytes(data);
  if (b.byteLength < PREFIX_BYTES) {
    throw protocolError(`${b.byteLength} bytes is shorter than the ${PREFIX_BYTES}-byte prefix`, {
      field: 'length',
    });
  }
  if (b.byteLength > MAX_FRAME_BYTES) {
    throw protocolError(`${b.byteLength} bytes exceeds the ${MAX_FRAME_BYTES}-byte frame limit`, {
      field: 'length',
    });
  }
  // Fixed-offset bytes are read through the DataView: the length checks above (and per frame
  // type below) are what keep them in range, and getUint8 throws rather than reading undefined.
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const magic = dv.getUint8(0);
  if (magic !== MAGIC)
    throw protocolError(`magic byte 0x${magic.toString(16)} is not 0x48`, { field: 'magic' });
  const version = dv.getUint8(1);
  if (version !== STREAM_PROTOCOL_VERSION) {
    throw protocolError(`protocol version ${version} is not ${STREAM_PROTOCOL_VERSION}`, {
      field: 'version',
      version,
    });
  }
  const typeCode = dv.getUint8(2);
  const type = TYPE_BY_CODE.get(typeCode);
  if (!type) throw protocolError(`unknown frame type ${typeCode}`, { field: 'type', code: typeCode });
  const flags = dv.getUint8(3);
  if (flags !== 0)
    throw protocolError(`flags 0x${flags.toString(16)} are not 0 in version 1`, { field: 'flags' });
  const stream = dv.getUint32(4, true);
  const hex = (at: number) => toHex(b.subarray(at, at + 32));

  switch (type) {
    case 'piece': {
      if (b.byteLength <= PIECE_OVERHEAD_BYTES) {
        throw protocolError('a piece frame carries no bytes', { field: 'length' });
      }
      return { type, stream, index: dv.getUint32(8, true), bytes: b.subarray(PIECE_OVERHEAD_BYTES) };
    }
    case 'header': {
      if (b.byteLength < 60) expectLength(type, b.byteLength, 60);
      const kindCode = dv.getUint8(8);
      const rank = dv.getUint8(10);
      if (rank > MAX_TENSOR_RANK)
        throw protocolError(`rank ${rank} exceeds ${MAX_TENSOR_RANK}`, { field: 'shape' });
      expectLength(type, b.byteLength, 60 + 4 * rank);
      if (b[11] !== 0) throw protocolError('reserved header byte is not 0', { field: 'reserved' });
      const hi = dv.getUint32(16, true);
      // Above 2^53 a byte count is not exact in a JS number; such a size is absurd anyway.
      if (hi >= 2 ** 21) throw protocolError('totalBytes exceeds 2^53', { field: 'totalBytes' });
      const common = {
        type,
        stream,
        totalBytes: hi * 2 ** 32 + dv.getUint32(12, true),
        pieceSize: dv.getUint32(20, true),
        firstPiece: dv.getUint32(24, true),
        sha256: hex(28),
      } as const;
      let frame: Frame;
      if (kindCode === KIND_CODE.blob) {
        if (b[9] !== 0 || rank !== 0) {
          throw protocolError('a blob header carries a dtype or shape', { field: 'kind' });
        }
        frame = { ...common, kind: 'blob' };
      } else if (kindCode === KIND_CODE.tensor) {
        const dtypeCode = dv.getUint8(9);
        const dtype = DTYPE_BY_CODE.get(dtypeCode);
        if (!dtype)
          throw protocolError(`unknown dtype code ${dtypeCode}`, { field: 'dtype', code: dtypeCode });
        const shape = Array.from({ length: rank }, (_, i) => dv.getUint32(60 + 4 * i, true));
        frame = { ...common, kind: 'tensor', dtype, shape };
      } else {
        throw protocolError(`unknown stream kind ${kindCode}`, { field: 'kind', code: kindCode });
      }
      checkHeader(frame as StreamHeader, limits);
      return frame;
    }
    case 'end': {
      expectLength(type, b.byteLength, 44);
      const status = dv.getUint8(8);
      if (status > 1) throw protocolError(`end status ${status} is not 0 or 1`, { field: 'status' });
      if (b[9] !== 0 || b[10] !== 0 || b[11] !== 0) {
        throw protocolError('reserved end bytes are not 0', { field: 'reserved' });
      }
      return { type, stream, ok: status === 0, sha256: hex(12) };
    }
    case 'request': {
      if (b.byteLength !== 52) expectLength(type, b.byteLength, 48);
      const pieceSize = dv.getUint32(12, true);
      checkPieceSize(pieceSize, true);
      const fromPiece = dv.getUint32(8, true);
      if (b.byteLength === 48) return { type, stream, fromPiece, pieceSize, sha256: hex(16) };
      const toPiece = dv.getUint32(48, true);
      const bad = badRange(fromPiece, toPiece);
      if (bad) throw protocolError(bad, { field: 'toPiece', fromPiece, toPiece });
      return { type, stream, fromPiece, pieceSize, sha256: hex(16), toPiece };
    }
    case 'error': {
      if (b.byteLength < 12) expectLength(type, b.byteLength, 12);
      const reason = REASON_BY_CODE.get(dv.getUint16(8, true));
      if (!reason) throw protocolError(`unknown error reason ${dv.getUint16(8, true)}`, { field: 'reason' });
      const len = dv.getUint16(10, true);
      if (len > MAX_ERROR_MESSAGE_BYTES) {
        throw protocolError(`error message of ${len} bytes exceeds ${MAX_ERROR_MESSAGE_BYTES}`, {
          field: 'message',
        });
      }
      expectLength(type, b.byteLength, 12 + len);
      return { type, stream, reason, message: new TextDecoder().decode(b.subarray(12)) };
    }
    case 'cancel':
    case 'ping':
    case 'pong':
      expectLength(type, b.byteLength, PREFIX_BYTES);
      return { type, stream };
  }
}
