// Run by dev-wallet.node.test.ts under tsx (`scripts/run-ts.mjs`), as the `hearth` CLI runs: the
// dev wallet installed in a Chromium context must give the page an EIP-1193 provider and an
// EIP-6963 announcement there too (a function passed to the browser would carry tsx's helpers).
// Prints one JSON line.
import { chromium } from 'playwright-core';
import { generatePrivateKey } from 'viem/accounts';
import { installDevWallet } from '../../src/node/dev-wallet.ts';
import { chromiumArgs } from '../../src/node/volunteers.ts';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: chromiumArgs('swiftshader'),
});
try {
  const context = await browser.newContext();
  const wallet = await installDevWallet(context, {
    key: generatePrivateKey(),
    rpcUrl: 'http://127.0.0.1:9',
    chainId: 31337,
    name: 'Child Wallet',
  });
  const page = await context.newPage();
  await page.goto('data:text/html,<p>hi</p>');
  const seen = await page.evaluate(`(async () => {
    const names = [];
    window.addEventListener('eip6963:announceProvider', (e) => names.push(e.detail.info.name));
    window.dispatchEvent(new Event('eip6963:requestProvider'));
    const accounts = await window.ethereum.request({ method: 'eth_requestAccounts' });
    const chain = await window.ethereum.request({ method: 'eth_chainId' });
    return { names, accounts, chain };
  })()`);
  process.stdout.write(
    `${JSON.stringify({ ...(seen as object), address: wallet.address, prompts: wallet.prompts })}\n`,
  );
} finally {
  await browser.close();
}
