// Submitting from the console: the researcher chooses (or drops) a manifest and its blob files,
// as `hearth submit` takes them from a folder. Blobs are matched by their SHA-256, whatever the
// files are called; those the hub already holds are not uploaded again; then the manifest goes in.

import type { HubApi } from '../../client/hub-api.ts';
import { at, entry } from '../../core/at.ts';
import { HearthError } from '../../core/errors.ts';
import { sha256Hex } from '../../core/hash.ts';
import { type Manifest, parseManifest, submitBlobs } from '../../protocol/kinds/index.ts';

export interface SubmitPlan {
  /** The manifest's file name and text (sent as the researcher wrote it). */
  readonly manifestName: string;
  readonly text: string;
  readonly manifest: Manifest;
  /** Every blob the hub needs for it. */
  readonly needed: readonly string[];
  /** The chosen files by SHA-256 (the manifest's own file left out). */
  readonly files: ReadonlyMap<string, File>;
}

/**
 * Which chosen file is the manifest (the one `.json` file that parses as one) and what the others
 * hash to. Throws `input/invalid` naming the problem: no manifest, two of them, a bad field.
 */
export async function planSubmit(chosen: readonly File[]): Promise<SubmitPlan> {
  if (chosen.length === 0)
    throw new HearthError('input/invalid', 'choose a manifest (.json) and its blob files.');
  if (!globalThis.crypto?.subtle) {
    throw new HearthError(
      'input/invalid',
      'this page is not a secure context (https or localhost), so the browser cannot hash the files; open the console over https.',
    );
  }
  const candidates = chosen.filter((f) => f.name.toLowerCase().endsWith('.json'));
  const parsed: { file: File; text: string; manifest: Manifest }[] = [];
  let firstError: string | undefined;
  for (const file of candidates) {
    const text = await file.text();
    try {
      parsed.push({ file, text, manifest: parseManifest(JSON.parse(text)) });
    } catch (e) {
      firstError ??= `${file.name}: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  if (parsed.length === 0) {
    throw new HearthError(
      'input/invalid',
      firstError ?? 'none of the chosen files is a manifest: add the job\u2019s .json file.',
    );
  }
  if (parsed.length > 1) {
    throw new HearthError(
      'input/invalid',
      `${parsed.map((p) => p.file.name).join(', ')} are all manifests: submit one job at a time.`,
    );
  }
  const { file, text, manifest } = at(parsed, 0, 'the manifest');
  const files = new Map<string, File>();
  for (const f of chosen) {
    if (f === file) continue;
    files.set(await sha256Hex(await f.arrayBuffer()), f);
  }
  return { manifestName: file.name, text, manifest, needed: submitBlobs(manifest), files };
}

/**
 * Uploads what the hub lacks and submits; `step` hears each step in words. Returns the job's id.
 * A blob neither chosen nor on the hub stops it before anything is submitted.
 */
export async function runSubmit(
  api: HubApi,
  plan: SubmitPlan,
  step: (what: string) => void,
): Promise<string> {
  const missing: string[] = [];
  const upload: string[] = [];
  for (const sha of plan.needed) {
    if (await api.hasBlob(sha)) continue;
    if (plan.files.has(sha)) upload.push(sha);
    else missing.push(sha);
  }
  if (missing.length > 0) {
    throw new HearthError(
      'blob/missing',
      `${missing.length} blob${missing.length === 1 ? '' : 's'} the manifest names ${missing.length === 1 ? 'is' : 'are'} neither among the chosen files nor on the hub: ${missing
        .slice(0, 3)
        .map((s) => `${s.slice(0, 12)}…`)
        .join(', ')}${missing.length > 3 ? ', …' : ''}`,
      { details: { missing: missing.slice(0, 32) } },
    );
  }
  let bytes = 0;
  for (const [i, sha] of upload.entries()) {
    const f = entry(plan.files, sha, 'blob file');
    step(`uploading ${f.name} (${i + 1} of ${upload.length})…`);
    const data = new Uint8Array(await f.arrayBuffer());
    await api.putBlob(sha, data);
    bytes += data.byteLength;
  }
  step(`submitting ${plan.manifestName}…`);
  const { job } = await api.submit(plan.text);
  step(
    `submitted ${job}: ${upload.length} blob${upload.length === 1 ? '' : 's'} uploaded (${bytes} bytes), ${plan.needed.length - upload.length} already on the hub.`,
  );
  return job;
}
