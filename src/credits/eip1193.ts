// The wallet calls Hearth makes, over any EIP-1193 provider, with the provider's errors turned
// into HearthErrors a page can show: the volunteer said no (4001) or has not authorised this page
// (4100) → 'wallet/rejected'; the chain is not in the wallet (4902) → added, then switched to;
// anything else from the wallet → 'wallet/unavailable' with its message.
import { HearthError } from '../core/errors.ts';

/** What EIP-1193 says a provider is. */
export interface Eip1193Provider {
  request(args: { method: string; params?: unknown }): Promise<unknown>;
}

/** A chain as `wallet_addEthereumChain` describes it (EIP-3085), for a wallet that lacks it. */
export interface AddChainParams {
  readonly chainId: number;
  readonly chainName: string;
  readonly rpcUrls: readonly string[];
  readonly nativeCurrency?: { readonly name: string; readonly symbol: string; readonly decimals: number };
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** The code of an EIP-1193 error (also when a wallet nests it in `data` or `cause`). */
function codeOf(e: unknown): number | undefined {
  for (let x: unknown = e, depth = 0; x && typeof x === 'object' && depth < 4; depth++) {
    const c = (x as { code?: unknown }).code;
    if (typeof c === 'number') return c;
    x = (x as { data?: unknown; cause?: unknown }).data ?? (x as { cause?: unknown }).cause;
  }
  return undefined;
}

/** One request, its failure as a HearthError (`what`: what was asked, for the message). */
export async function call(
  provider: Eip1193Provider,
  method: string,
  params: unknown,
  what: string,
): Promise<unknown> {
  try {
    return await provider.request(params === undefined ? { method } : { method, params });
  } catch (e) {
    const code = codeOf(e);
    const said = e instanceof Error ? e.message : String((e as { message?: unknown })?.message ?? e);
    if (code === 4001) {
      throw new HearthError('wallet/rejected', `${what}: you declined in your wallet. Nothing was changed.`, {
        details: { code },
        cause: e,
      });
    }
    if (code === 4100) {
      throw new HearthError(
        'wallet/rejected',
        `${what}: the wallet has not authorised this page; connect it first.`,
        {
          details: { code },
          cause: e,
        },
      );
    }
    throw new HearthError('wallet/unavailable', `${what}: the wallet failed (${said.slice(0, 200)}).`, {
      details: { ...(code === undefined ? {} : { code }) },
      cause: e,
    });
  }
}

/** Asks the wallet for its accounts (a prompt the first time); the first one, checked. */
export async function connect(provider: Eip1193Provider): Promise<string> {
  const accounts = await call(provider, 'eth_requestAccounts', undefined, 'connecting your wallet');
  const first = Array.isArray(accounts) ? accounts[0] : undefined;
  if (typeof first !== 'string' || !ADDRESS.test(first)) {
    throw new HearthError('wallet/unavailable', 'connecting your wallet: it named no account.');
  }
  return first;
}

/**
 * Makes the wallet use `chainId`: nothing when it does already; `wallet_switchEthereumChain`
 * otherwise, and when the wallet does not know the chain (4902), `wallet_addEthereumChain` with
 * `add` (when given) and a second switch.
 */
export async function ensureChain(
  provider: Eip1193Provider,
  chainId: number,
  add?: AddChainParams,
): Promise<void> {
  const now = await call(provider, 'eth_chainId', undefined, 'reading your wallet’s chain');
  if (typeof now === 'string' && Number.parseInt(now, 16) === chainId) return;
  const hex = `0x${chainId.toString(16)}`;
  try {
    await provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId: hex }] });
    return;
  } catch (e) {
    if (codeOf(e) !== 4902) {
      // Turned into a HearthError by the same rules as every other call.
      await call(
        { request: () => Promise.reject(e) },
        'wallet_switchEthereumChain',
        undefined,
        `switching to chain ${chainId}`,
      );
    }
  }
  if (!add) {
    throw new HearthError(
      'wallet/unavailable',
      `switching to chain ${chainId}: your wallet does not know this chain; add it in the wallet (chain id ${chainId}) and try again.`,
    );
  }
  await call(
    provider,
    'wallet_addEthereumChain',
    [
      {
        chainId: hex,
        chainName: add.chainName,
        rpcUrls: add.rpcUrls,
        nativeCurrency: add.nativeCurrency ?? { name: 'Ether', symbol: 'ETH', decimals: 18 },
      },
    ],
    `adding chain ${chainId} to your wallet`,
  );
  await call(provider, 'wallet_switchEthereumChain', [{ chainId: hex }], `switching to chain ${chainId}`);
}

/** `personal_sign` of a text message by `address` (EIP-191); the signature, checked for shape. */
export async function personalSign(
  provider: Eip1193Provider,
  address: string,
  message: string,
): Promise<string> {
  const hex = `0x${[...new TextEncoder().encode(message)].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
  const sig = await call(provider, 'personal_sign', [hex, address], 'signing in with your wallet');
  if (typeof sig !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(sig)) {
    throw new HearthError(
      'wallet/unavailable',
      'signing in with your wallet: it returned no 65-byte signature.',
    );
  }
  return sig;
}
