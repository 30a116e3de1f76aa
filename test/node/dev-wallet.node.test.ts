// The development wallet (src/node/dev-wallet.ts) where `npm start` uses it: under tsx, the way
// the `hearth` CLI runs. A regression test: the init script was once a function, whose source under
// tsx carried esbuild's `__name` helper, so the page had no `window.ethereum` and every demo
// volunteer failed to sign in — while the same code passed under vitest.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('dev wallet under tsx', () => {
  it('announces itself by EIP-6963 and answers EIP-1193 requests in the page', async () => {
    const { stdout } = await run(process.execPath, ['scripts/run-ts.mjs', 'test/node/dev-wallet-child.ts'], {
      timeout: 120_000,
    });
    const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
      names: string[];
      accounts: string[];
      chain: string;
      address: string;
      prompts: string[];
    };
    expect(out.names).toEqual(['Child Wallet']);
    expect(out.accounts).toEqual([out.address]);
    expect(out.chain).toBe('0x7a69');
    expect(out.prompts).toEqual(['eth_requestAccounts']);
  }, 150_000);
});
