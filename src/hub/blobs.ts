// The hub's blobs (models, inputs, uniforms, honeypot answers): files named by their SHA-256 in one
// folder. An upload is streamed to a temporary file, hashed as it streams, cut off at the size
// limit, and renamed into place only when its bytes match the hash it was uploaded under — so a
// file named by a hash always holds those bytes, even after a crash mid-upload.
import { createHash, randomUUID } from 'node:crypto';
import {
  closeSync,
  createWriteStream,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { HearthError } from '../core/errors.ts';
import { isSha256Hex } from '../core/hash.ts';

/** True for the error `receive` throws when an upload passes the size limit. */
export function isTooLarge(e: unknown): boolean {
  return e instanceof HearthError && e.details['reason'] === 'too-large';
}

/**
 * Blobs on disk, by SHA-256.
 *
 * @example
 * const blobs = new BlobDir('/var/lib/hearth/blobs', 256 * 2 ** 20);
 * await blobs.receive(req, sha); // throws blob/corrupt on a hash mismatch, too-large past the limit
 * blobs.size(sha); // bytes, or undefined when absent
 */
export class BlobDir {
  readonly dir: string;
  readonly maxBytes: number;

  constructor(dir: string, maxBytes: number) {
    mkdirSync(dir, { recursive: true });
    this.dir = dir;
    this.maxBytes = maxBytes;
  }

  /** The file of a blob; only for a valid hash, so a name can never escape the folder. */
  path(sha256: string): string {
    if (!isSha256Hex(sha256)) {
      throw new HearthError('input/invalid', `blob: expected a SHA-256 as 64 lowercase hex digits.`, {
        details: { path: 'sha256' },
      });
    }
    return join(this.dir, sha256);
  }

  /** Bytes of a stored blob, or undefined when it is absent. */
  size(sha256: string): number | undefined {
    try {
      const st = statSync(this.path(sha256));
      return st.isFile() ? st.size : undefined;
    } catch {
      return undefined;
    }
  }

  has(sha256: string): boolean {
    return this.size(sha256) !== undefined;
  }

  /** The whole blob in memory (for honeypot checks on small tensors), or undefined. */
  read(sha256: string): ArrayBuffer | undefined {
    try {
      const b = readFileSync(this.path(sha256));
      return new Uint8Array(b).slice().buffer;
    } catch {
      return undefined;
    }
  }

  /**
   * Stores bytes the hub made itself (a `train` job's θ and outer momentum each round) and returns
   * their SHA-256. Synchronous, so that it can run inside a store transaction: written to a
   * temporary file, fsynced, renamed into place — the transaction that names the blob commits
   * after its bytes are durable. A blob already there is left as it is.
   */
  writeSync(bytes: Uint8Array): string {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const final = this.path(sha256);
    if (this.has(sha256)) return sha256;
    const tmp = join(this.dir, `.write-${randomUUID()}`);
    const fd = openSync(tmp, 'w');
    try {
      let at = 0;
      while (at < bytes.byteLength) at += writeSync(fd, bytes, at, bytes.byteLength - at);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, final);
    return sha256;
  }

  /**
   * Streams `src` into the blob `sha256` and resolves with its size. Rejects with a too-large
   * error (see isTooLarge) as soon as more than maxBytes arrive — `src` is then paused, not read
   * further — and with 'blob/corrupt' when the bytes hash to something else. No partial file
   * is left behind either way.
   */
  receive(src: Readable, sha256: string): Promise<number> {
    const final = this.path(sha256);
    const tmp = join(this.dir, `.upload-${randomUUID()}`);
    const max = this.maxBytes;
    return new Promise<number>((resolve, reject) => {
      const out = createWriteStream(tmp, { flags: 'wx' });
      const hash = createHash('sha256');
      let size = 0;
      let ended = false;
      let settled = false;
      const detach = () => {
        src.off('data', onData);
        src.off('end', onEnd);
        src.off('error', onAbort);
        src.off('close', onClose);
      };
      const fail = (e: HearthError) => {
        if (settled) return;
        settled = true;
        detach();
        src.pause();
        const cleanup = () => {
          rm(tmp, { force: true }).then(
            () => reject(e),
            () => reject(e),
          );
        };
        if (out.closed) cleanup();
        else {
          out.once('close', cleanup);
          out.destroy();
        }
      };
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > max) {
          fail(
            new HearthError('input/invalid', `blob ${sha256}: more than the hub's limit of ${max} bytes.`, {
              details: { reason: 'too-large', limit: max },
            }),
          );
          return;
        }
        hash.update(chunk);
        if (!out.write(chunk)) {
          src.pause();
          out.once('drain', () => {
            if (!settled) src.resume();
          });
        }
      };
      const onAbort = () =>
        fail(new HearthError('input/invalid', `blob ${sha256}: the upload was cut off.`, { details: {} }));
      const onClose = () => {
        if (!ended) onAbort();
      };
      const onEnd = () => {
        ended = true;
        detach();
        out.end(() => {
          if (settled) return;
          const got = hash.digest('hex');
          if (got !== sha256) {
            fail(
              new HearthError(
                'blob/corrupt',
                `blob ${sha256}: the uploaded bytes hash to ${got}; upload the blob under its own SHA-256.`,
                { details: { expected: sha256, got } },
              ),
            );
            return;
          }
          durable(tmp)
            .then(() => rename(tmp, final))
            .then(
              () => {
                settled = true;
                resolve(size);
              },
              (cause: unknown) =>
                fail(
                  new HearthError('store/failed', `blob ${sha256}: could not be stored.`, {
                    details: {},
                    cause,
                  }),
                ),
            );
        });
      };
      out.on('error', (cause) =>
        fail(
          new HearthError('store/failed', `blob ${sha256}: could not be written.`, { details: {}, cause }),
        ),
      );
      src.on('data', onData);
      src.on('end', onEnd);
      src.on('error', onAbort);
      src.on('close', onClose);
      src.resume();
    });
  }
}

/** fsync before the rename: a blob the hub said it stored must survive a power cut. */
async function durable(file: string): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
