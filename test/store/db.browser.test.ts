// The database itself: schema, reopening, and stepping aside for another tab's upgrade.
import { deleteDB, openDB } from 'idb';
import { describe, expect, it } from 'vitest';
import { HEARTH_DB_VERSION, openHearthDB } from '../../src/store/index.ts';
import { freshDb } from './helpers.ts';

describe('openHearthDB', () => {
  it('creates the schema: blobs with an LRU index, blob bytes, outbox, checkpoints, unfinished leases', async () => {
    const { db, name, dispose } = await freshDb();
    try {
      expect(db.name).toBe(name);
      expect(db.version).toBe(HEARTH_DB_VERSION);
      expect([...db.objectStoreNames].sort()).toEqual([
        'blob-bytes',
        'blobs',
        'checkpoints',
        'outbox',
        'unfinished',
      ]);
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

  it('upgrades a version-1 database (before unfinished leases) and keeps its data', async () => {
    const name = `hearth-test-v1-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const v1 = await openDB(name, 1, {
      upgrade(db) {
        db.createObjectStore('blobs', { keyPath: 'sha256' }).createIndex('by-last-used', 'lastUsed');
        db.createObjectStore('blob-bytes');
        db.createObjectStore('outbox', { keyPath: 'seq', autoIncrement: true }).createIndex(
          'by-shard',
          'shard',
          {
            unique: true,
          },
        );
        db.createObjectStore('checkpoints', { keyPath: 'shard' });
      },
    });
    await v1.put('checkpoints', { shard: 'old', step: 7, state: {}, savedAt: 1 });
    v1.close();
    const db = await openHearthDB(name);
    try {
      expect(db.version).toBe(HEARTH_DB_VERSION);
      expect([...db.objectStoreNames]).toContain('unfinished');
      expect((await db.get('checkpoints', 'old'))?.step).toBe(7);
    } finally {
      db.close();
      await deleteDB(name);
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
