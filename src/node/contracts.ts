// Hearth's Solidity contracts (`contracts/`), compiled with solc from npm (the wasm build: no
// toolchain to download) and cached. Compiling with OpenZeppelin takes seconds, deploying in a
// test or `hearth chain` should not: the output is kept in `.cache/contracts/` (gitignored) under
// a key that hashes everything that shapes it — the contract's source, every file it imports, the
// solc version and the settings — so an edit to any of them rebuilds, and nothing else does.
//
// The ABI the browser uses is `src/credits/abi.ts`, a TypeScript const (viem infers types from it
// and the browser cannot run solc); a test holds it equal to what solc produces here.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Abi, Hex } from 'viem';
import { HearthError } from '../core/errors.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);

/** Where compiled contracts are cached (gitignored). */
export const CONTRACT_CACHE_DIR = join(ROOT, '.cache', 'contracts');

/**
 * solc's settings for every Hearth contract. Optimised for many calls (`runs`): a claim is called
 * far more often than the contract is deployed. `cancun` (PUSH0, MCOPY, transient storage) runs on
 * every current EVM chain and rollup; a newer default might not.
 */
export const SOLC_SETTINGS = {
  optimizer: { enabled: true, runs: 100_000 },
  viaIR: true,
  evmVersion: 'cancun',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
} as const;

/** A compiled contract. */
export interface CompiledContract {
  readonly abi: Abi;
  /** Creation code, 0x-prefixed. */
  readonly bytecode: Hex;
  /** Runtime code, 0x-prefixed. */
  readonly deployedBytecode: Hex;
}

/**
 * An import path as solc sees it → the file's text: a package's file (`@openzeppelin/…`) from
 * this checkout's node_modules, anything else relative to `root`. Undefined when there is none.
 */
function readSource(path: string, root: string): string | undefined {
  try {
    const file = path.startsWith('@') ? require.resolve(path, { paths: [ROOT] }) : join(root, path);
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  } catch {
    return undefined;
  }
}

const IMPORT = /^\s*import\s+(?:[^'"]*from\s+)?["']([^"']+)["']/gm;

/** Every source a file needs, itself first, keyed by solc's path for it. */
function sourceClosure(entry: string, root: string): Map<string, string> {
  const out = new Map<string, string>();
  const todo = [entry];
  for (let path = todo.pop(); path !== undefined; path = todo.pop()) {
    if (out.has(path)) continue;
    const text = readSource(path, root);
    if (text === undefined) {
      throw new HearthError('input/invalid', `contract source "${path}" not found (imported by ${entry}).`, {
        details: { path },
      });
    }
    out.set(path, text);
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? '';
      todo.push(spec.startsWith('.') ? join(dirname(path), spec).replaceAll('\\', '/') : spec);
    }
  }
  return out;
}

interface SolcModule {
  version(): string;
  compile(
    input: string,
    callbacks: { import(path: string): { contents: string } | { error: string } },
  ): string;
}

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[];
  contracts?: Record<
    string,
    Record<string, { abi: Abi; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>
  >;
}

let solcPromise: Promise<SolcModule> | undefined;
/** solc, loaded on the first miss only: its wasm takes a second or two to instantiate. */
function loadSolc(): Promise<SolcModule> {
  solcPromise ??= import('solc').then((m) => (m.default ?? m) as unknown as SolcModule);
  return solcPromise;
}

/** The solc version the npm package ships, as its `version()` says, without loading the wasm. */
function solcPackageVersion(): string {
  return (
    JSON.parse(readFileSync(require.resolve('solc/package.json', { paths: [ROOT] }), 'utf8')) as {
      version: string;
    }
  ).version;
}

/**
 * Compiles `contract` from `source` (a path under `options.root`, by default the repository root,
 * e.g. `contracts/HearthCredit.sol`), or returns the cached output (in `options.cacheDir`, by
 * default `CONTRACT_CACHE_DIR`). Throws HearthError('input/invalid') with solc's messages when the
 * source does not compile.
 *
 * @example
 * const { abi, bytecode } = await compileContract('contracts/HearthCredit.sol', 'HearthCredit');
 */
export async function compileContract(
  source: string,
  contract: string,
  options: { cacheDir?: string; root?: string } = {},
): Promise<CompiledContract> {
  const root = options.root ?? ROOT;
  const sources = sourceClosure(source, root);
  const hash = createHash('sha256');
  hash.update(`solc ${solcPackageVersion()}\n${JSON.stringify(SOLC_SETTINGS)}\n${contract}\n`);
  for (const [path, text] of [...sources].sort(([a], [b]) => (a < b ? -1 : 1))) {
    hash.update(`${path}\n${text.length}\n${text}`);
  }
  const key = hash.digest('hex').slice(0, 32);
  const dir = options.cacheDir ?? CONTRACT_CACHE_DIR;
  const file = join(dir, `${contract}-${key}.json`);
  const cached = readCached(file);
  if (cached) return cached;
  // One process compiles, the others (test files starting at once on a fresh checkout) wait for
  // its output instead of spending seconds of CPU each on the same compile.
  mkdirSync(dir, { recursive: true });
  const lock = `${file}.lock`;
  for (;;) {
    if (await takeLock(lock)) {
      try {
        return readCached(file) ?? (await compileNow(source, contract, sources, root, file));
      } finally {
        rmSync(lock, { recursive: true, force: true });
      }
    }
    // Another process held the lock and let it go: its output, or (it failed) our turn.
    const theirs = readCached(file);
    if (theirs) return theirs;
  }
}

/** The cached output at `file`, or undefined (absent, torn or edited: compile again). */
function readCached(file: string): CompiledContract | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as CompiledContract;
  } catch {
    return undefined;
  }
}

/** How long a compile may hold the lock before others take it over (solc takes seconds). */
const LOCK_STALE_MS = 120_000;

/**
 * Takes the compile lock (a directory: `mkdir` is atomic) and returns true; when another process
 * holds it, waits until it is released (or stale) and returns false.
 */
async function takeLock(lock: string): Promise<boolean> {
  for (;;) {
    try {
      mkdirSync(lock);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let age = 0;
    try {
      age = Date.now() - statSync(lock).mtimeMs;
    } catch {
      continue; // released between the two calls: try again
    }
    if (age > LOCK_STALE_MS) {
      rmSync(lock, { recursive: true, force: true }); // its holder died
      continue;
    }
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      const held = statSync(lock, { throwIfNoEntry: false });
      if (!held || Date.now() - held.mtimeMs > LOCK_STALE_MS) break;
    }
    return false;
  }
}

async function compileNow(
  source: string,
  contract: string,
  sources: ReadonlyMap<string, string>,
  root: string,
  file: string,
): Promise<CompiledContract> {
  const solc = await loadSolc();
  const input = {
    language: 'Solidity',
    sources: Object.fromEntries([...sources].map(([path, content]) => [path, { content }])),
    settings: SOLC_SETTINGS,
  };
  const output = JSON.parse(
    solc.compile(JSON.stringify(input), {
      import: (path) => {
        const contents = readSource(path, root);
        return contents === undefined ? { error: `not found: ${path}` } : { contents };
      },
    }),
  ) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) {
    throw new HearthError(
      'input/invalid',
      `${source} does not compile (solc ${solc.version()}):\n${errors.map((e) => e.formattedMessage).join('\n')}`,
      { details: { path: source } },
    );
  }
  const out = output.contracts?.[source]?.[contract];
  if (!out) {
    throw new HearthError('input/invalid', `${source} has no contract named ${contract}.`, {
      details: { path: source },
    });
  }
  const compiled: CompiledContract = {
    abi: out.abi,
    bytecode: `0x${out.evm.bytecode.object}`,
    deployedBytecode: `0x${out.evm.deployedBytecode.object}`,
  };
  // Written whole, then renamed: a reader never sees half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(compiled));
  renameSync(tmp, file);
  return compiled;
}

/**
 * HearthCredit's ABI and creation code (`contracts/HearthCredit.sol`), compiled once and cached.
 *
 * @example
 * const { abi, bytecode } = await loadHearthCredit();
 * await wallet.deployContract({ abi, bytecode, args: [owner, signer] });
 */
export function loadHearthCredit(options: { cacheDir?: string } = {}): Promise<CompiledContract> {
  return compileContract('contracts/HearthCredit.sol', 'HearthCredit', options);
}
