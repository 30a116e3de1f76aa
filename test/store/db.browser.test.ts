// The database itself: schema, reopening, and stepping aside for another tab's upgrade.
import { deleteDB } from 'idb';
import { describe, expect, it } from 'vitest';
import { HEARTH_DB_VERSION, openHearthDB } from '../../src/store/index.ts';
import { freshDb } from './helpers.ts';

describe('openHearthDB', () => {
  it('creates the schema: blobs with an LRU index, blob bytes, outbox, checkpoints', async () => {
    const { db, name, dispose } = await freshDb();
    try {
      expect(db.name).toBe(name);
      expect(db.version).toBe(HEARTH_DB_VERSION);
      expect([...db.objectStoreNames].sort()).toEqual(['blob-bytes', 'blobs', 'checkpoints', 'outbox']);
      const tx = db.transaction(['blobs', 'outbox'], 'readonly');
      expect([...tx.objectStore('blobs').indexNames]).toEqual(['by-last-used']);
      expect(tx.objectStore('outbox').index('by-shard').unique).toBe(true);
      expect(tx.objectStore('outbox').autoIncrement).toBe(true);
      await tx.done;
    } finally {
      await dispose();
    }
  });

  it('reopens an existing database without touching its data', async () => {
    const { db, name, dispose } = await freshDb();
    await db.put('checkpoints', { shard: 's', step: 1, state: {}, savedAt: 0 });
    db.close();
    const again = await openHearthDB(name);
    try {
      expect((await again.get('checkpoints', 's'))?.step).toBe(1);
    } finally {
      again.close();
      await dispose();
    }
  });

  it('closes itself when another tab needs the database (no blocked upgrade or delete)', async () => {
    const { db, name } = await freshDb();
    let blocked = false;
    // Without the `blocking` handler this delete would wait for db.close() forever.
    await deleteDB(name, { blocked: () => (blocked = true) });
    expect(blocked).toBe(false);
    await expect(db.get('blobs', 'x')).rejects.toThrow();
  });
});
