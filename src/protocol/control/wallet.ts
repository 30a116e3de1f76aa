// Wallet messages: binding a volunteer's Hearth identity to an Ethereum address by Sign-In with
// Ethereum (EIP-4361), over the volunteer's authenticated connection.
//
//   siwe-request {}                   → siwe-terms { domain, uri, chainId, nonce, resource, … }
//   siwe-bind { message, signature }  → wallet-bound { address }
//
// The connection is already the volunteer's (hello → challenge → auth with its key), and the
// message the wallet signs names that identity in its resources (`hearth:volunteer:<id>`), so a
// page can neither bind another volunteer's identity (it cannot authenticate as it) nor replay a
// signature made for one (the resource would not match). The terms come from the hub, so the
// page builds exactly the message the hub will check; the hub checks every field anyway.
import { integer, object, string } from '../schema.ts';

/** Longest SIWE message accepted (EIP-4361's fields plus a statement and a few resources). */
export const MAX_SIWE_MESSAGE_CHARS = 2_000;

/** An Ethereum address: `0x` and 40 hex digits, any case. */
export const ADDRESS_PATTERN = /^0x[0-9a-fA-F]{40}$/;

/** The resource a volunteer's SIWE message must list: its Hearth identity. */
export function volunteerResource(volunteer: string): string {
  return `hearth:volunteer:${volunteer}`;
}

const address = string({ max: 42, pattern: ADDRESS_PATTERN });

/** Requests a client sends in this concern, by type. */
export const WALLET_REQUESTS = {
  /** Asks for the terms of a Sign-In with Ethereum message (a fresh nonce, single use). */
  'siwe-request': object({}),
  /** The SIWE message as signed and its signature (`personal_sign`, 65 bytes hex). */
  'siwe-bind': object({
    message: string({ max: MAX_SIWE_MESSAGE_CHARS }),
    signature: string({ max: 2 + 2 * 65, pattern: /^0x[0-9a-fA-F]{130}$/ }),
  }),
};

/** What the hub sends in this concern, by type. */
export const WALLET_HUB = {
  /** What the message must say: these fields, verbatim, with the wallet's address. */
  'siwe-terms': object({
    domain: string({ max: 300 }),
    uri: string({ max: 400 }),
    chainId: integer(1, Number.MAX_SAFE_INTEGER),
    nonce: string({ max: 64, pattern: /^[A-Za-z0-9]{8,64}$/ }),
    /** `hearth:volunteer:<id>`: the identity the address is bound to. */
    resource: string({ max: 200 }),
    statement: string({ max: 300 }),
    /** ISO 8601 time the message must expire at or before; the nonce is void after it. */
    expirationTime: string({ max: 40 }),
    /** ISO 8601 time the terms were issued (the message's `issuedAt`). */
    issuedAt: string({ max: 40 }),
  }),
  /** The volunteer's credit goes to this address from now on (and everything it accrued). */
  'wallet-bound': object({ address }),
};

/** Which hub messages answer each request. */
export const WALLET_REPLIES = {
  'siwe-request': ['siwe-terms'],
  'siwe-bind': ['wallet-bound'],
} as const;
