// The volunteer's local store: one IndexedDB database with a blob cache, a result outbox and
// training checkpoints. Usable from the page and from the compute worker.
export {
  BlobCache,
  type BlobCacheOptions,
  type BlobCacheUsage,
  type BlobSource,
  DEFAULT_BLOB_BUDGET,
} from './blob-cache.ts';
export { CheckpointStore } from './checkpoints.ts';
export {
  type Checkpoint,
  type CheckpointState,
  type CheckpointValue,
  HEARTH_DB_NAME,
  HEARTH_DB_VERSION,
  type HearthDB,
  openHearthDB,
  requestPersistentStorage,
} from './db.ts';
export { ResultOutbox } from './outbox.ts';
export { type UnfinishedEntry, UnfinishedLeases, type UnfinishedLeasesOptions } from './unfinished.ts';
