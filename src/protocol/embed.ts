// Who embedded a volunteer, for credit attribution: the site whose page held the `<hearth-widget>`
// (an exact web origin) and the payout address the site named (`0x` + 40 hex digits, the shape of
// an EIP-55 address; the checksum of mixed case is not checked here). The widget's frame sends
// both in its hello (protocol/control/session.ts), the hub records them with each ledger entry
// made from that connection's results.

/** `0x` and 40 hex digits: an Ethereum address in any case (EIP-55 is its mixed-case form). */
export const PAYOUT_PATTERN = /^0x[0-9a-fA-F]{40}$/;

/** Longest origin accepted (a host name is at most 253 characters). */
export const MAX_ORIGIN_CHARS = 300;

/** Whether `s` is a payout address: `0x` and 40 hex digits. */
export function isPayoutAddress(s: unknown): s is string {
  return typeof s === 'string' && PAYOUT_PATTERN.test(s);
}

/**
 * Whether `s` is exactly a web origin, `http(s)://host[:port]` with nothing after it, written the
 * way a browser writes `location.origin` (lower case, no default port, no trailing slash).
 *
 * @example
 * isWebOrigin('https://news.example');      // true
 * isWebOrigin('https://news.example/');     // false: a URL, not an origin
 * isWebOrigin('https://news.example:443');  // false: a browser drops the default port
 */
export function isWebOrigin(s: unknown): s is string {
  if (typeof s !== 'string' || s.length > MAX_ORIGIN_CHARS) return false;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return false;
  }
  return (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === s;
}

/** Which site embedded a volunteer, and where its share of the credit goes. */
export interface EmbedAttribution {
  /** The embedding page's origin, e.g. `https://news.example`. */
  readonly origin: string;
  /** The payout address the site named in its `<hearth-widget payout>`. */
  readonly payout: string;
}
