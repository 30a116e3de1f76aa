// A development wallet for headless Chromium: a real EIP-1193 provider, announced by EIP-6963 and
// set as `window.ethereum` in every page and frame of a Playwright context, whose signatures are
// made in Node with a local private key (viem) and whose other calls go to the chain's RPC (a
// local anvil). `npm start` binds its demo volunteers with it, and the wallet tests drive it: real
// keys, real signatures, a real chain — only the extension's popup is replaced by "yes".
//
// Never for real funds: the key lives in the Node process that drives the browser.
import type { BrowserContext } from 'playwright-core';
import { createWalletClient, type Hex, hexToString, http, isHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { localChain } from './chain.ts';

export interface DevWalletOptions {
  /** The key it signs with (an anvil account in development). */
  readonly key: Hex;
  readonly rpcUrl: string;
  readonly chainId: number;
  /** The name it announces (EIP-6963 `info.name`). */
  readonly name?: string;
  /** Refuse this many prompts with 4001 (user rejected) before saying yes: to test refusals. */
  readonly rejectFirst?: number;
}

/** What the wallet did, for tests: each prompt it answered (a real wallet would have shown one). */
export interface DevWallet {
  readonly address: string;
  readonly prompts: string[];
}

const PROMPTS = new Set([
  'eth_requestAccounts',
  'personal_sign',
  'eth_sendTransaction',
  'eth_signTypedData_v4',
]);

/** Installs the wallet in `context` (before its pages load). */
export async function installDevWallet(context: BrowserContext, o: DevWalletOptions): Promise<DevWallet> {
  const account = privateKeyToAccount(o.key);
  const chain = localChain(o.chainId, o.rpcUrl);
  const client = createWalletClient({ account, chain, transport: http(o.rpcUrl) });
  const wallet: DevWallet = { address: account.address, prompts: [] };
  let rejections = o.rejectFirst ?? 0;
  let rpcId = 0;
  const forward = async (method: string, params: unknown) => {
    const r = await fetch(o.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params: params ?? [] }),
    });
    const body = (await r.json()) as { result?: unknown; error?: { code: number; message: string } };
    if (body.error) throw body.error;
    return body.result;
  };
  await context.exposeFunction('__hearthDevWallet', async (method: string, paramsJson: string) => {
    const params = paramsJson ? (JSON.parse(paramsJson) as unknown[]) : [];
    try {
      if (PROMPTS.has(method)) {
        if (rejections > 0) {
          rejections--;
          return JSON.stringify({ error: { code: 4001, message: 'User rejected the request.' } });
        }
        wallet.prompts.push(method);
      }
      let result: unknown;
      switch (method) {
        case 'eth_requestAccounts':
        case 'eth_accounts':
          result = [account.address];
          break;
        case 'eth_chainId':
          result = `0x${o.chainId.toString(16)}`;
          break;
        case 'wallet_switchEthereumChain': {
          const want = Number.parseInt(String((params[0] as { chainId?: string })?.chainId), 16);
          if (want !== o.chainId) {
            return JSON.stringify({ error: { code: 4902, message: `Unrecognized chain ${want}.` } });
          }
          result = null;
          break;
        }
        case 'personal_sign': {
          const data = params[0];
          const message = typeof data === 'string' && isHex(data) ? hexToString(data) : String(data);
          result = await account.signMessage({ message });
          break;
        }
        case 'eth_sendTransaction': {
          const tx = params[0] as { to: Hex; data?: Hex; value?: Hex };
          result = await client.sendTransaction({
            to: tx.to,
            ...(tx.data ? { data: tx.data } : {}),
            ...(tx.value ? { value: BigInt(tx.value) } : {}),
          });
          break;
        }
        default:
          result = await forward(method, params);
      }
      return JSON.stringify({ result: result ?? null });
    } catch (e) {
      const err = e as { code?: unknown; message?: unknown };
      return JSON.stringify({
        error: { code: typeof err.code === 'number' ? err.code : -32603, message: String(err.message ?? e) },
      });
    }
  });
  // A string, not a function: under tsx (the CLI) a function's source carries esbuild's `__name`
  // helper, which the page does not have.
  const info = {
    uuid: crypto.randomUUID(),
    name: o.name ?? 'Hearth dev wallet',
    rdns: 'org.hearth.devwallet',
    icon: 'data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAxIDEiPjxyZWN0IHdpZHRoPSIxIiBoZWlnaHQ9IjEiIGZpbGw9IiNlNjU1MDAiLz48L3N2Zz4=',
  };
  await context.addInitScript(`(() => {
    const info = ${JSON.stringify(info)};
    const provider = {
      isHearthDevWallet: true,
      async request(args) {
        const out = JSON.parse(
          await window.__hearthDevWallet(args.method, args.params === undefined ? '' : JSON.stringify(args.params)),
        );
        if (out.error) throw Object.assign(new Error(out.error.message), { code: out.error.code });
        return out.result;
      },
    };
    const announce = () =>
      window.dispatchEvent(new CustomEvent('eip6963:announceProvider', { detail: Object.freeze({ info, provider }) }));
    window.addEventListener('eip6963:requestProvider', announce);
    announce();
    window.ethereum = provider;
  })();`);
  return wallet;
}
