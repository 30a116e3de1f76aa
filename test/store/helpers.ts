// Each test opens its own database (a unique name) and deletes it afterwards, so tests never
// see each other's data even when they share a browser origin.
import { deleteDB } from 'idb';
import { type HearthDB, openHearthDB } from '../../src/store/index.ts';

let counter = 0;

export async function freshDb(): Promise<{ db: HearthDB; name: string; dispose: () => Promise<void> }> {
  const name = `hearth-test-${Date.now()}-${Math.random().toString(36).slice(2)}-${counter++}`;
  const db = await openHearthDB(name);
  return {
    db,
    name,
    dispose: async () => {
      db.close();
      await deleteDB(name);
    },
  };
}

/** Deterministic bytes: `n` bytes from a small LCG seeded by `seed`. */
export function bytesOf(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}
