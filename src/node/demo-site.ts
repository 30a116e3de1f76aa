// The embedding site of `npm start -- --keep`: a page on another origin (another port on
// 127.0.0.1) that embeds <hearth-widget>, as a site on the web would, so the widget can be tried
// next to the volunteer page and the console. The hub is told to allow its origin.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A placeholder payout address for the demo (no wallet is asked). */
export const DEMO_PAYOUT = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';

export interface DemoSite {
  /** `http://127.0.0.1:PORT`: allow it on the hub. */
  readonly origin: string;
  /** The page embeds the widget of this hub (set once the hub listens). */
  setHub(hubUrl: string): void;
  close(): Promise<void>;
}

/** Escapes text for an HTML attribute. */
const attr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

export async function startDemoSite(): Promise<DemoSite> {
  let hub = '';
  const server = createServer((req, res) => {
    if ((req.url ?? '/').split('?')[0] !== '/') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      // The lines a host needs for the widget (README, "Embedding").
      'content-security-policy': `default-src 'self'; script-src ${hub}; frame-src ${hub}; connect-src ${hub}; style-src 'self' 'unsafe-inline'`,
    });
    res.end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A site that embeds Hearth</title>
<script type="module" src="${attr(hub)}/widget/hearth-widget.js"></script>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}</style></head>
<body><h1>A site that embeds Hearth</h1>
<p>Any page can lend its visitors' GPUs to a hub, with each visitor's yes, by one script and one element:</p>
<hearth-widget hub="${attr(hub)}" payout="${DEMO_PAYOUT}"></hearth-widget>
</body></html>
`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    setHub: (url) => {
      hub = url;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
