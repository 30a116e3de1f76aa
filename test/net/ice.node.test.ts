// `?ice=` on the volunteer page is parsed and bounded, not cast (issue 11).
import { describe, expect, it } from 'vitest';
import { ICE_LIMITS, parseIceServers } from '../../src/net/ice.ts';

describe('parseIceServers', () => {
  it('takes STUN and TURN servers, one URL or several, with credentials', () => {
    expect(
      parseIceServers(
        '[{"urls":"stun:stun.example.org:3478"},{"urls":["turn:t.example.org","turns:t.example.org:443"],"username":"u","credential":"c"}]',
      ),
    ).toEqual([
      { urls: ['stun:stun.example.org:3478'] },
      { urls: ['turn:t.example.org', 'turns:t.example.org:443'], username: 'u', credential: 'c' },
    ]);
    expect(parseIceServers('[]')).toEqual([]);
  });

  it('refuses what is not a list of ICE servers, naming the entry', () => {
    const bad: [string, RegExp][] = [
      ['{not json', /^ice: expected a JSON list/],
      ['{"urls":"stun:x"}', /^ice: expected an array/],
      ['[{"urls":"http://x"}]', /^ice\[0\]\.urls: /],
      ['[{"urls":[]}]', /^ice\[0\]\.urls: expected at least one URL/],
      ['[{"urls":"stun:x","extra":1}]', /^ice\[0\]/],
      ['[{"urls":["stun:x", 5]}]', /^ice\[0\]\.urls\[1\]/],
      ['[{"urls":"stun:x","credential":{}}]', /^ice\[0\]\.credential/],
      [JSON.stringify(Array(ICE_LIMITS.maxServers + 1).fill({ urls: 'stun:x' })), /^ice: expected at most 8/],
    ];
    for (const [text, re] of bad) expect(() => parseIceServers(text), text).toThrow(re);
  });
});
