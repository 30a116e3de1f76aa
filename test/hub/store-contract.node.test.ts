// Every HubStore backend against the one contract (store-contract.ts): in memory, on a real
// SQLite file in a temporary folder, and journaled onto such a file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import { describeStore } from './store-contract.ts';

const dir = mkdtempSync(join(tmpdir(), 'hearth-contract-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `hub-${n++}.db`);

describeStore('MemoryStore', () => new MemoryStore());
describeStore('SqliteStore', () => new SqliteStore(file()));
describeStore('JournaledStore', () => new JournaledStore(file()));
// The group commits on the event loop instead of the writer thread (writerThread: false).
describeStore('JournaledStore, inline writer', () => new JournaledStore(file(), { writerThread: false }));
