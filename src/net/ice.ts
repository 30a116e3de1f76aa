// ICE servers (STUN/TURN) a deployment gives the volunteer page (`?ice=` on its URL): text from a
// link anyone can craft, so it is parsed and bounded like any other input rather than cast.
import { HearthError } from '../core/errors.ts';
import { arr, obj, onlyKeys, str } from '../protocol/validate.ts';

/** Bounds on `?ice=`: a handful of servers is all a deployment needs. */
export const ICE_LIMITS = { maxServers: 8, maxUrls: 4, maxUrlChars: 512, maxSecretChars: 256 } as const;

const ICE_URL = /^(stun|stuns|turn|turns):[^\s]+$/;

/**
 * The ICE servers in `text` (a JSON list such as `[{"urls":"stun:stun.example.org:3478"}]`), or a
 * HearthError ('input/invalid') naming the bad entry: not JSON, not a list, too many, a URL that is
 * not stun:/stuns:/turn:/turns:, unknown fields.
 *
 * @example
 * parseIceServers('[{"urls":["turn:turn.example.org"],"username":"u","credential":"c"}]');
 */
export function parseIceServers(text: string): RTCIceServer[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new HearthError(
      'input/invalid',
      'ice: expected a JSON list of ICE servers, like [{"urls":"stun:host:3478"}].',
      {
        details: { path: 'ice' },
      },
    );
  }
  return arr(v, 'ice', ICE_LIMITS.maxServers).map((s, i): RTCIceServer => {
    const p = `ice[${i}]`;
    const o = obj(s, p);
    onlyKeys(o, p, ['urls', 'username', 'credential']);
    const list = typeof o.urls === 'string' ? [o.urls] : arr(o.urls, `${p}.urls`, ICE_LIMITS.maxUrls);
    if (list.length === 0)
      throw new HearthError('input/invalid', `${p}.urls: expected at least one URL.`, {
        details: { path: `${p}.urls` },
      });
    const urls = list.map((u, k) =>
      str(u, typeof o.urls === 'string' ? `${p}.urls` : `${p}.urls[${k}]`, {
        max: ICE_LIMITS.maxUrlChars,
        pattern: ICE_URL,
      }),
    );
    return {
      urls,
      ...(o.username === undefined
        ? {}
        : { username: str(o.username, `${p}.username`, { max: ICE_LIMITS.maxSecretChars }) }),
      ...(o.credential === undefined
        ? {}
        : { credential: str(o.credential, `${p}.credential`, { max: ICE_LIMITS.maxSecretChars }) }),
    };
  });
}
