// NumPy's .npy format, version 1.0, written by hand so `hearth results` and the researcher console
// (which download results as .npy) need no dependency:
// magic "\x93NUMPY", version 1.0, a little-endian u16 header length, then a Python dict literal
// padded with spaces (and a final newline) so the data starts on a 64-byte boundary.
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
import type { DType } from '../core/tensor.ts';

const DESCR: Readonly<Record<DType, string>> = { f32: '<f4', f16: '<f2', i32: '<i4', u32: '<u4' };
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/**
 * The bytes of a .npy file holding `data` (raw little-endian elements, C order) as `dtype[shape]`.
 *
 * @example
 * writeFileSync('y.npy', npy('f32', [2, 2], new Float32Array([1, 2, 3, 4]).buffer));
 */
export function npy(dtype: DType, shape: readonly number[], data: Uint8Array | ArrayBuffer): Uint8Array {
  // A 1-d shape is the tuple "(n,)"; Python needs the trailing comma.
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${tuple}, }`;
  const unpadded = MAGIC.length + 2 + 2 + dict.length + 1;
  const total = Math.ceil(unpadded / 64) * 64;
  const header = `${dict}${' '.repeat(total - unpadded)}\n`;
  if (header.length > 0xffff)
    throw new RangeError(`npy: a header of ${header.length} bytes needs format 2.0.`);
  const body = data instanceof Uint8Array ? data : new Uint8Array(data);
  const out = new Uint8Array(total + body.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  out[8] = header.length & 0xff;
  out[9] = header.length >> 8;
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(body, total);
  return out;
}
