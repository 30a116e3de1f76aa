// The Sign-In with Ethereum message a volunteer's wallet signs: built from the terms the hub gave
// (its nonce, domain, URI, chain, the volunteer's identity as a resource, the expiry), with the
// wallet's address. The hub checks every field again; building it from the terms only means an
// honest page never has a message refused.
import { createSiweMessage } from 'viem/siwe';
import { HearthError } from '../core/errors.ts';

/** The hub's `siwe-terms` (protocol/control/wallet.ts). */
export interface SiweTermsIn {
  readonly domain: string;
  readonly uri: string;
  readonly chainId: number;
  readonly nonce: string;
  readonly resource: string;
  readonly statement: string;
  readonly expirationTime: string;
  readonly issuedAt: string;
}

/** The EIP-4361 text for `address` under `terms`. */
export function siweMessage(terms: SiweTermsIn, address: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) {
    throw new HearthError(
      'wallet/unavailable',
      `the wallet's account ${address.slice(0, 50)} is not an address.`,
    );
  }
  return createSiweMessage({
    address: address as `0x${string}`,
    domain: terms.domain,
    uri: terms.uri,
    chainId: terms.chainId,
    nonce: terms.nonce,
    version: '1',
    statement: terms.statement,
    resources: [terms.resource],
    issuedAt: new Date(terms.issuedAt),
    expirationTime: new Date(terms.expirationTime),
  });
}
