// The layers hold (ARCHITECTURE.md): `src/` never imports `test/`, a layer imports only layers
// listed before it, and `client/` and `hub/` — the two sides of the wire — never import each other.
// Read from the import statements themselves, so a new arrow the wrong way fails here.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ORDER = [
  'core',
  'protocol',
  'store',
  'gpu',
  'kernels',
  'onnx',
  'train',
  'worker',
  'net',
  'credits',
  'client',
  'hub',
  'ui',
  'node',
];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const SRC = resolve('src');
const imports = files(SRC).flatMap((file) => {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'(\.[^']+)'/g)].map((m) => ({
    file: relative(SRC, file),
    target: relative(SRC, resolve(dirname(file), m[1]!)),
  }));
});

describe('layers', () => {
  it('finds the imports it checks', () => {
    expect(imports.length).toBeGreaterThan(300);
  });

  it('src never imports test/', () => {
    expect(imports.filter((i) => i.target.startsWith('../test/'))).toEqual([]);
  });

  it('a layer imports only the layers before it; client and hub never import each other', () => {
    const bad = imports.filter(({ file, target }) => {
      const from = file.split('/')[0]!;
      const to = target.split('/')[0]!;
      if (from === to || !ORDER.includes(from) || !ORDER.includes(to)) return false;
      if ((from === 'client' && to === 'hub') || (from === 'hub' && to === 'client')) return true;
      if (from === 'ui' && to === 'hub') return true;
      return ORDER.indexOf(to) > ORDER.indexOf(from);
    });
    expect(bad).toEqual([]);
  });
});
