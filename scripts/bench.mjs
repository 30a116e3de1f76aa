#!/usr/bin/env node
// npm run bench -- NAME [args...]: runs bench/NAME.ts in Node (tsx + the `?raw` loader, via
// scripts/run-ts.mjs) with the GPU environment scripts/gpu-env.sh gives the tests: Dawn pointed
// at SwiftShader's Vulkan driver unless HEARTH_NATIVE_VULKAN is set, and a private XDG_RUNTIME_DIR.
// A bench is a bench/*.ts file whose first line is `// bench: <what it compares>`.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, 'bench');
const MARK = '// bench:';

/** name → description of every bench in bench/. */
function benches() {
  const out = new Map();
  if (!existsSync(benchDir)) return out;
  for (const f of readdirSync(benchDir).sort()) {
    if (!f.endsWith('.ts')) continue;
    const first = readFileSync(join(benchDir, f), 'utf8').split('\n', 1)[0] ?? '';
    if (first.startsWith(MARK)) out.set(f.slice(0, -3), first.slice(MARK.length).trim());
  }
  return out;
}

function usage(list, stream) {
  stream.write('usage: npm run bench -- NAME [args...]\n\navailable benches:\n');
  for (const [name, what] of list) stream.write(`  ${name.padEnd(12)} ${what}\n`);
  if (list.size === 0) stream.write('  (none: bench/*.ts files start with "// bench: …")\n');
}

const [name, ...args] = process.argv.slice(2);
const list = benches();
if (!name || name === '--help' || name === '-h') {
  usage(list, name ? process.stdout : process.stderr);
  process.exit(name ? 0 : 2);
}
if (!list.has(name)) {
  process.stderr.write(`unknown bench "${name}"\n\n`);
  usage(list, process.stderr);
  process.exit(2);
}

// The environment scripts/gpu-env.sh sets for the tests, without installing anything.
const env = { ...process.env };
env.CHROMIUM_PATH ||= '/usr/bin/chromium';
if (!env.VK_ICD_FILENAMES && !env.VK_DRIVER_FILES && !env.HEARTH_NATIVE_VULKAN) {
  env.VK_ICD_FILENAMES = '/usr/lib/chromium/vk_swiftshader_icd.json';
}
if (!env.XDG_RUNTIME_DIR || !existsSync(env.XDG_RUNTIME_DIR)) {
  env.XDG_RUNTIME_DIR = join(env.TMPDIR || tmpdir(), `hearth-xdg-${process.getuid?.() ?? 0}`);
  mkdirSync(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
}
// Dawn loads libvulkan.so.1 from the system; without one, use the copy Debian's chromium ships.
let hasVulkan = false;
try {
  hasVulkan = /libvulkan\.so\.1 /.test(execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }));
} catch {
  hasVulkan = false;
}
if (!hasVulkan) {
  const lib = join(dirname(env.CHROMIUM_PATH), '..', 'lib', 'chromium');
  env.LD_LIBRARY_PATH = env.LD_LIBRARY_PATH ? `${lib}:${env.LD_LIBRARY_PATH}` : lib;
}
if (env.VK_ICD_FILENAMES && !existsSync(env.VK_ICD_FILENAMES)) {
  process.stderr.write(
    `${env.VK_ICD_FILENAMES} is missing: install Debian's chromium (it ships SwiftShader), ` +
      'or set HEARTH_NATIVE_VULKAN=1 to use the system Vulkan driver.\n',
  );
  process.exit(1);
}

const child = spawn(
  process.execPath,
  [join(root, 'scripts', 'run-ts.mjs'), join('bench', `${name}.ts`), ...args],
  {
    cwd: root,
    env,
    stdio: 'inherit',
  },
);
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 1)));
