// `hearth` as a user runs it: each command is a child process (node scripts/run-ts.mjs
// src/node/cli.ts …) against a real hub with a real SQLite file in a temp folder. Where a job
// needs volunteers, the hub runs in this process and its scheduler stands in for them (as in
// hub-server.node.test.ts), because a child hub's scheduler cannot be reached from here.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import { authenticate, createToken } from '../../src/hub/tokens.ts';
import { result, truth } from '../hub/fixtures.ts';
import { CLI, hearth } from './cli-helpers.ts';
import { ADMIN, manifestJson, sha, type TestHub, testHub } from './hub-helpers.ts';

const dirs: string[] = [];
const hubs: TestHub[] = [];
afterEach(async () => {
  for (const h of hubs.splice(0)) await h.dispose();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'hearth-cli-'));
  dirs.push(d);
  return d;
}

/** Reads a .npy file back independently of the writer: header fields, alignment, data. */
function readNpy(bytes: Uint8Array) {
  expect([...bytes.subarray(0, 6)]).toEqual([0x93, ...Buffer.from('NUMPY')]);
  expect([bytes[6], bytes[7]]).toEqual([1, 0]);
  const headerLen = bytes[8]! | (bytes[9]! << 8);
  const start = 10 + headerLen;
  expect(start % 64).toBe(0);
  const header = Buffer.from(bytes.subarray(10, start)).toString('latin1');
  expect(header.endsWith('\n')).toBe(true);
  const m = /^\{'descr': '([<>|][a-z]\d)', 'fortran_order': False, 'shape': \(([\d, ]*)\), \} *\n$/.exec(
    header,
  );
  expect(m, header).not.toBeNull();
  const shape = m![2]!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  return { descr: m![1]!, shape, data: bytes.slice(start) };
}

describe('hearth token', () => {
  it('creates, lists and revokes tokens in the SQLite file', async () => {
    const db = join(tempDir(), 'hub.db');
    const made = await hearth(['token', 'create', '--name', 'alice', '--db', db]);
    expect(made.code).toBe(0);
    const secret = made.stdout.trim();
    expect(secret).toMatch(/^hth_[A-Za-z0-9_-]{43}$/);
    expect(made.stderr).toMatch(/shown this once/);

    const [again, bad, nameless, first] = await Promise.all([
      hearth(['token', 'create', '--name', 'alice', '--db', db]),
      hearth(['token', 'create', '--name', 'no spaces', '--db', db]),
      hearth(['token', 'create', '--db', db]),
      hearth(['token', 'list', '--db', db]),
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/taken/);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/token name/);
    expect(nameless.code).toBe(2);
    expect(nameless.stderr).toMatch(/--name NAME is required/);
    let list = first;
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^alice\s+created \S+\s+active\s+no budget$/m);
    expect(list.stdout).not.toContain(secret);

    let store = new SqliteStore(db);
    expect(authenticate(store, secret)).toEqual({ kind: 'researcher', name: 'alice' });
    store.close();

    const [revoked, nobody] = await Promise.all([
      hearth(['token', 'revoke', '--name', 'alice', '--db', db]),
      hearth(['token', 'revoke', '--name', 'bob', '--db', db]),
    ]);
    expect(revoked.code).toBe(0);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toMatch(/no token named "bob"/);
    list = await hearth(['token', 'list', '--db', db]);
    expect(list.stdout).toMatch(/^alice\s+created \S+\s+revoked \S+\s+no budget$/m);
    // A budget in credits, exact; a float-ish or negative one is refused before anything is written.
    const [rich, silly] = await Promise.all([
      hearth(['token', 'create', '--name', 'rich', '--budget', '1000.5', '--db', db]),
      hearth(['token', 'create', '--name', 'silly', '--budget', '1e3', '--db', db]),
    ]);
    expect(rich.code).toBe(0);
    expect(rich.stderr).toMatch(/budget 1000\.5 credits/);
    expect(silly.code).toBe(1);
    expect(silly.stderr).toMatch(/--budget: expected a number of credits/);
    list = await hearth(['token', 'list', '--db', db]);
    expect(list.stdout).toMatch(/^rich\s+created \S+\s+active\s+budget 1000\.5$/m);
    expect(list.stdout).not.toMatch(/^silly/m);
    store = new SqliteStore(db);
    expect(authenticate(store, secret)).toBeUndefined();
    store.close();
  });
});

describe('hearth hub', () => {
  it('starts, prints its URL, answers, and closes on SIGTERM', async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, [...CLI, 'hub', '--db', join(dir, 'hub.db'), '--port', '0'], {
      env: { PATH: process.env.PATH ?? '', HEARTH_ADMIN_TOKEN: ADMIN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        stdout += c;
        const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/m.exec(stdout);
        if (m) resolve(m[1]!);
      });
      child.on('close', () => reject(new Error(`hub exited early: ${stderr}`)));
    });
    try {
      let r = await fetch(`${url}/v1/tokens`, { headers: { authorization: `Bearer ${ADMIN}` } });
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual({ tokens: [] });
      r = await fetch(`${url}/v1/jobs/x`);
      expect(r.status).toBe(401);
      expect(readdirSync(dir).sort()).toContain('blobs');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stdout).toMatch(/hub closed/);
    expect(stderr).toMatch(/SIGTERM: closing the hub/);
  });

  it('refuses a bad port or a wildcard origin with usage, exit 2', async () => {
    let r = await hearth(['hub', '--port', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--port/);
    r = await hearth(['hub', '--origin', '*']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--origin/);
  });
});

describe('hearth submit, status, results', () => {
  it('gives up on a hub that accepts connections and never answers (exit 1, within its timeout)', async () => {
    // A half-open hub: the TCP connection is taken, nothing ever comes back. Without a deadline
    // the command never returned (the test's own timeout failed it).
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as { port: number }).port;
      const r = await hearth(['status', 'job-x', '--hub', `http://127.0.0.1:${port}`, '--token', 't'], {
        HEARTH_TIMEOUT_MS: '500',
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/did not answer GET \/v1\/jobs\/job-x within 500 ms/);
    } finally {
      silent.close();
    }
  });

  it('uploads blobs, submits, reports progress and writes validated results as .npy', async () => {
    const t = await testHub();
    hubs.push(t);
    const { token } = createToken(t.hub.store, 'alice');
    const env = { HEARTH_HUB: t.hub.url, HEARTH_TOKEN: token };
    const dir = tempDir();
    // A lease outlives a slow `hearth status` start on a busy machine (its deadline would
    // otherwise pass between the lease and the status line that counts it).
    const { manifest, blobs } = manifestJson(3, { deadlineMs: 120_000 });
    const file = join(dir, 'job.json');
    writeFileSync(file, JSON.stringify(manifest));
    for (const b of blobs.slice(0, 2)) writeFileSync(join(dir, sha(b)), b);

    // One blob file missing: nothing is submitted, the missing hash is named.
    let r = await hearth(['submit', file], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(sha(blobs[2]!));
    expect(t.hub.store.listJobs()).toHaveLength(0);

    writeFileSync(join(dir, sha(blobs[2]!)), blobs[2]!);
    r = await hearth(['submit', file], env);
    expect(r.code, r.stderr).toBe(0);
    const job = r.stdout.trim();
    expect(t.hub.store.getJob(job)?.manifest.kind).toBe('wgsl');
    // Two blobs were already there from the refused run: only the third is new.
    expect(r.stderr).toMatch(/uploaded 1 blob\(s\), 16 bytes; 2 already on the hub/);
    for (const b of blobs) expect(t.hub.blobs.has(sha(b))).toBe(true);

    r = await hearth(['status', job], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /\[\.{30}\]\s+0% 0\/3 validated · 0 done awaiting agreement · 0 in flight · 0 failed · running/,
    );

    // Simulated volunteers: one lease in flight, then its result awaiting a second replica.
    const s = t.hub.scheduler;
    const caps = { maxBufferBytes: 1 << 30, features: [] };
    const first = s.lease('v1', caps, Date.now())!;
    r = await hearth(['status', job], env);
    expect(r.stdout).toMatch(/0\/3 validated · 0 done awaiting agreement · 1 in flight/);
    const i0 = Number(first.shard.slice(first.shard.lastIndexOf('/') + 1));
    await s.submitResult('v1', await result(first.shard, job, truth(i0)), Date.now());
    r = await hearth(['status', job], env);
    expect(r.stdout).toMatch(/0\/3 validated · 1 done awaiting agreement · 0 in flight/);
    // Then they validate every shard.
    for (let k = 0; k < 6; k++) {
      for (const v of ['v1', 'v2']) {
        const g = s.lease(v, caps, Date.now());
        if (!g) continue;
        const i = Number(g.shard.slice(g.shard.lastIndexOf('/') + 1));
        await s.submitResult(v, await result(g.shard, job, truth(i)), Date.now());
      }
    }
    expect(s.progress(job)).toMatchObject({ status: 'done', validated: 3 });
    r = await hearth(['status', job, '--watch'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\[#{30}\] 100% 3\/3 validated .* done/);

    const out = join(dir, 'out');
    r = await hearth(['results', job, '--out', out], env);
    expect(r.code, r.stderr).toBe(0);
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as {
      job: string;
      status: string;
      shards: { index: number; outputs: { name: string; shape: number[]; sha256: string; file: string }[] }[];
    };
    expect(index).toMatchObject({ job, status: 'done' });
    expect(index.shards.map((x) => x.index)).toEqual([0, 1, 2]);
    for (const shard of index.shards) {
      const o = shard.outputs[0]!;
      expect(o).toMatchObject({ name: 'y', shape: [4], file: `${shard.index}-y.npy` });
      const n = readNpy(new Uint8Array(readFileSync(join(out, o.file))));
      expect(n.descr).toBe('<f4');
      expect(n.shape).toEqual([4]);
      expect(sha(n.data)).toBe(o.sha256);
      expect(new Float32Array(n.data.buffer, n.data.byteOffset, 4)).toEqual(truth(shard.index));
    }
    expect(readdirSync(out).sort()).toEqual(['0-y.npy', '1-y.npy', '2-y.npy', 'index.json']);
  });

  it('prints the hub\u2019s error for a bad token or an unknown job, and needs a token', async () => {
    const t = await testHub();
    hubs.push(t);
    const { token } = createToken(t.hub.store, 'alice');
    let r = await hearth(['status', 'job-nope'], { HEARTH_HUB: t.hub.url, HEARTH_TOKEN: 'wrong' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/401 http\/unauthorized: the bearer token is unknown or revoked/);
    r = await hearth(['status', 'job-nope', '--hub', t.hub.url, '--token', token]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/404 http\/not-found: job job-nope does not exist/);
    r = await hearth(['results', 'job-nope', '--hub', t.hub.url]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--out DIR is required/);
    r = await hearth(['status', 'job-nope', '--hub', t.hub.url]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no token/);
  });
});

describe('usage', () => {
  it('answers an unknown command or flag with usage and exit 2', async () => {
    const [cmd, flag, none, extra] = await Promise.all([
      hearth(['frobnicate']),
      hearth(['submit', 'x.json', '--nope']),
      hearth([]),
      hearth(['token', 'list', 'extra']),
    ]);
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toMatch(/unknown command "frobnicate"[\s\S]*usage: hearth <command>/);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--nope[\s\S]*usage: hearth submit/);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/usage: hearth <command>/);
    expect(extra.code).toBe(2);
  });

  it('has --help on every command', async () => {
    const lines = [
      ['--help'],
      ['hub', '--help'],
      ['token', '--help'],
      ['token', 'create', '--help'],
      ['token', 'list', '--help'],
      ['token', 'revoke', '--help'],
      ['submit', '--help'],
      ['status', '--help'],
      ['results', '-h'],
      ['volunteer', '--help'],
      ['example', '--help'],
      ['chain', '--help'],
    ];
    const runs = await Promise.all(lines.map((l) => hearth(l)));
    runs.forEach((r, i) => {
      expect(r.code, lines[i]!.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^usage: hearth/);
    });
    expect(runs[9]!.stdout).toMatch(/headless Chromium tabs/);
    expect(runs[11]!.stdout).toMatch(/--signer-key-file|signer\.key/);
    const e = await hearth(['example']);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/--out DIR is required/);
  });
});
