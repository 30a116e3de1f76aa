/** Element types Hearth moves and computes with. */
export type DType = 'f32' | 'f16' | 'i32' | 'u32';

export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = { f32: 4, f16: 2, i32: 4, u32: 4 };

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeToString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}
