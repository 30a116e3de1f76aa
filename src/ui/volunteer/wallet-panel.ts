// The wallet panel, shared by the volunteer page and the widget's frame: "Connect a wallet" lists
// the wallets this browser announces (EIP-6963, by name and icon; `window.ethereum` as a last
// resort), the chosen one signs in (binds this volunteer to its address), and the panel shows what
// the address earned, claimed and holds, with one Claim button. Discovery loads on the click;
// the wallet code (viem) loads when a wallet is chosen, never before.
import type { VolunteerController, VolunteerSnapshot } from '../../client/controller.ts';

export interface WalletPanel {
  render(s: VolunteerSnapshot): void;
  wire(controller: VolunteerController): void;
}

/** The panel in `doc`, drawn into the elements with its ids where present (`wallet-*`). */
export function walletPanel(doc: Document): WalletPanel {
  const $ = <T extends HTMLElement = HTMLElement>(id: string) => doc.getElementById(id) as T | null;
  const text = (id: string, value: string) => {
    const el = $(id);
    if (el) el.textContent = value;
  };

  const render = (s: VolunteerSnapshot) => {
    const w = s.wallet;
    const working = s.volunteerId !== null && s.state !== 'asking' && s.state !== 'declined';
    const connect = $<HTMLButtonElement>('wallet-connect');
    if (connect) connect.disabled = !working || w?.busy != null;
    const figures = $('wallet-figures');
    if (figures) figures.hidden = !w?.address;
    text('wallet-address', w?.address ?? '');
    text('wallet-earned', w?.earned ?? '–');
    text('wallet-pending', w?.pending ?? '–');
    text('wallet-claimed', w?.claimed ?? '–');
    text('wallet-claimable', w?.claimable ?? '–');
    text('wallet-balance', w?.balance ?? '–');
    const claim = $<HTMLButtonElement>('wallet-claim');
    if (claim) claim.disabled = !w?.address || w.busy !== null || w.claimable === null || w.claimable === '0';
    const busy = w?.busy;
    text(
      'wallet-message',
      busy === 'signing-in'
        ? 'Waiting for your wallet: connect, then sign the message.'
        : busy === 'claiming'
          ? 'Claiming…'
          : busy === 'reading'
            ? 'Reading the chain…'
            : (w?.message ?? ''),
    );
  };

  const wire = (controller: VolunteerController) => {
    const list = $<HTMLUListElement>('wallet-list');
    $('wallet-connect')?.addEventListener('click', async () => {
      if (!list) return;
      const { discoverWallets } = await import('../../credits/eip6963.ts');
      const wallets = await discoverWallets(window as unknown as Parameters<typeof discoverWallets>[0]);
      list.replaceChildren();
      if (wallets.length === 0) {
        text(
          'wallet-message',
          'No wallet found in this browser: install one (any EIP-6963 wallet) and reload.',
        );
        return;
      }
      for (const w of wallets) {
        const li = doc.createElement('li');
        const b = doc.createElement('button');
        b.type = 'button';
        if (w.icon) {
          const img = doc.createElement('img');
          img.src = w.icon;
          img.alt = '';
          img.width = 20;
          img.height = 20;
          b.append(img);
        }
        b.append(doc.createTextNode(` ${w.name}`));
        b.addEventListener('click', () => {
          list.replaceChildren();
          void controller.connectWallet(w.provider, w.name);
        });
        li.append(b);
        list.append(li);
      }
    });
    $('wallet-claim')?.addEventListener('click', () => void controller.claimTokens());
    $('wallet-refresh')?.addEventListener('click', () => void controller.refreshWallet());
  };

  return { render, wire };
}
