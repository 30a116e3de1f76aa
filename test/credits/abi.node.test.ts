// The ABI the browser uses (src/credits/abi.ts, a TypeScript const) is what solc makes of the
// contract today, and the compile cache rebuilds when a source changes and only then.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Abi } from 'viem';
import { afterAll, describe, expect, it } from 'vitest';
import { HEARTH_CREDIT_ABI } from '../../src/credits/abi.ts';
import { compileContract, loadHearthCredit } from '../../src/node/contracts.ts';

const tmp = mkdtempSync(join(tmpdir(), 'hearth-abi-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** An ABI as a sorted list of its items' canonical JSON: order is not part of an ABI. */
function canonical(abi: Abi | readonly unknown[]): string[] {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sortKeys)
      : typeof v === 'object' && v !== null
        ? Object.fromEntries(
            Object.entries(v)
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([k, x]) => [k, sortKeys(x)]),
          )
        : v;
  return abi.map((item) => JSON.stringify(sortKeys(item))).sort();
}

describe('HearthCredit ABI', () => {
  it('src/credits/abi.ts equals solc’s ABI of contracts/HearthCredit.sol', async () => {
    const { abi, bytecode } = await loadHearthCredit();
    expect(bytecode).toMatch(/^0x[0-9a-f]{1000,}$/);
    // On a mismatch: node scripts/run-ts.mjs scripts/credit-abi.ts > src/credits/abi.ts
    expect(canonical(HEARTH_CREDIT_ABI)).toEqual(canonical(abi));
    const names = (type: string) =>
      HEARTH_CREDIT_ABI.filter((i) => i.type === type).map((i) => ('name' in i ? i.name : ''));
    expect(names('function')).toEqual(
      expect.arrayContaining([
        'claim',
        'claimMany',
        'claimed',
        'setSigner',
        'signer',
        'previousSigner',
        'balanceOf',
      ]),
    );
    expect(names('event')).toEqual(expect.arrayContaining(['ClaimSkipped', 'SignerChanged', 'Transfer']));
    expect(names('error')).toEqual(
      expect.arrayContaining([
        'VoucherExpired',
        'InvalidSignature',
        'UnknownSigner',
        'SignerRetired',
        'NothingToClaim',
      ]),
    );
  });
});

describe('compile cache', () => {
  const root = join(tmp, 'root');
  const cacheDir = join(tmp, 'cache');
  const source = (value: number) =>
    `// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\nimport {Answer} from "./Answer.sol";\ncontract Probe is Answer { function get() external pure returns (uint256) { return ${value}; } }\n`;

  it('compiles once, reuses the output, and rebuilds when the contract or a file it imports changes', async () => {
    mkdirSync(join(root, 'c'), { recursive: true });
    writeFileSync(
      join(root, 'c', 'Answer.sol'),
      '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\nabstract contract Answer {}\n',
    );
    writeFileSync(join(root, 'c', 'Probe.sol'), source(1));
    const files = () => (existsSync(cacheDir) ? readdirSync(cacheDir).sort() : []);

    const first = await compileContract('c/Probe.sol', 'Probe', { root, cacheDir });
    expect(files()).toHaveLength(1);
    const cached = join(cacheDir, files()[0] as string);
    const mtime = statSync(cached).mtimeMs;
    expect(await compileContract('c/Probe.sol', 'Probe', { root, cacheDir })).toEqual(first);
    expect(statSync(cached).mtimeMs).toBe(mtime);

    writeFileSync(join(root, 'c', 'Probe.sol'), source(2));
    const second = await compileContract('c/Probe.sol', 'Probe', { root, cacheDir });
    expect(second.deployedBytecode).not.toBe(first.deployedBytecode);
    expect(files()).toHaveLength(2);

    writeFileSync(
      join(root, 'c', 'Answer.sol'),
      '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\nabstract contract Answer { event Asked(); }\n',
    );
    const third = await compileContract('c/Probe.sol', 'Probe', { root, cacheDir });
    expect(files()).toHaveLength(3);
    expect(third.abi.some((i) => i.type === 'event' && i.name === 'Asked')).toBe(true);
  });

  it('two compiles of the same source at once: one compiles, the other waits for its output', async () => {
    const dir = join(tmp, 'cache-race');
    writeFileSync(join(root, 'c', 'Probe.sol'), source(3));
    const [a, b] = await Promise.all([
      compileContract('c/Probe.sol', 'Probe', { root, cacheDir: dir }),
      compileContract('c/Probe.sol', 'Probe', { root, cacheDir: dir }),
    ]);
    expect(b).toEqual(a);
    expect(readdirSync(dir)).toHaveLength(1); // the output, no lock left behind
  });

  it('a source that does not compile fails with solc’s message', async () => {
    writeFileSync(
      join(root, 'c', 'Broken.sol'),
      'pragma solidity ^0.8.24;\ncontract Broken { uint256 x = ; }\n',
    );
    await expect(compileContract('c/Broken.sol', 'Broken', { root, cacheDir })).rejects.toMatchObject({
      code: 'input/invalid',
      message: expect.stringMatching(/c\/Broken\.sol does not compile[\s\S]*ParserError/),
    });
    await expect(compileContract('c/Nowhere.sol', 'Nowhere', { root, cacheDir })).rejects.toMatchObject({
      code: 'input/invalid',
    });
  });
});
