#!/usr/bin/env node
// Runs a TypeScript entry point in Node with `?raw` imports (WGSL) and Dawn's environment set.
// Usage: node scripts/run-ts.mjs FILE.ts [args...]
import { mkdirSync } from 'node:fs';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { register as registerTsx } from 'tsx/esm/api';

// Dawn finds SwiftShader (or a real driver) through the Vulkan loader. Where the caller set
// nothing, point it at Debian Chromium's SwiftShader so machines without a GPU still get a device.
if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && !process.env.HEARTH_NATIVE_VULKAN) {
  process.env.VK_ICD_FILENAMES = '/usr/lib/chromium/vk_swiftshader_icd.json';
}
if (!process.env.XDG_RUNTIME_DIR) {
  const dir = join(tmpdir(), `hearth-xdg-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}

register('./raw-loader.mjs', import.meta.url);
registerTsx();
const [file, ...rest] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/run-ts.mjs FILE.ts [args...]');
  process.exit(2);
}
process.argv = [process.argv[0], file, ...rest];
await import(pathToFileURL(resolve(file)).href);
