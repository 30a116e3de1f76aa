// startHub takes its store as an option: the composition root wires whatever HubStore it is given
// (here a MemoryStore: no file is made), and refuses to start with neither a store nor a file.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { startHub } from '../../src/node/hub-server.ts';
import { manifestJson, testHub, upload } from './hub-helpers.ts';

describe('startHub({ store })', () => {
  it('runs on the store it is given, and needs a store or a file', async () => {
    const store = new MemoryStore();
    const t = await testHub({ store });
    try {
      expect(t.hub.store).toBe(store);
      const { token } = createToken(store, 'alice');
      const { manifest, blobs } = manifestJson(2);
      await upload(t.hub.url, token, blobs);
      const r = await fetch(`${t.hub.url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(manifest),
      });
      expect(r.status).toBe(201);
      const { job } = (await r.json()) as { job: string };
      expect(store.getJob(job)?.manifest.kind).toBe('wgsl');
      // The dbPath testHub passes was not opened.
      expect(existsSync(join(t.dir, 'hub.db'))).toBe(false);
    } finally {
      await t.dispose();
    }
    await expect(
      startHub({ blobDir: '/tmp/unused', maxBlobBytes: 1, allowedOrigins: [] }),
    ).rejects.toMatchObject({
      code: 'input/invalid',
    });
  });
});
