// Seeded data (mulberry32) that Node tests, benches and the test pages make identically, so two
// processes or a tab and Node can make the same blob or tensor without sending it.

/** Deterministic bytes from a seed (mulberry32), so two processes can make the same blob. */
export function seededBytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i += 4) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    t = (t ^ (t >>> 14)) >>> 0;
    out[i] = t & 0xff;
    if (i + 1 < n) out[i + 1] = (t >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (t >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = t >>> 24;
  }
  return out;
}

/** Seeded floats in [−1, 1) (mulberry32); pure, so test pages import it too. */
export function seededFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}
