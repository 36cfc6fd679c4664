// This device: push notifications when an agent needs the operator (Web Push through the
// service worker), the operator's subscribed devices with a revoke button each, and which keys
// their phone key bar shows (kept by the daemon, the same on each of their devices).

import { useEffect, useState } from 'preact/hooks';
import type { PushInfo } from '../api';
import { useApi } from '../context';
import { ALL_KEYS, KEY_LABELS, type KeyId, saveKeys, useKeys } from '../keybar';
import { ErrorBox, Page, Time } from '../ui';

/** The id of this browser's own subscription, to tell it apart in the list. */
const MINE = 'kaged-push-id';

function bytesOf(b64url: string): Uint8Array<ArrayBuffer> {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** Why push cannot work in this browser, or null when it can. */
function unsupported(): string | null {
  if (!window.isSecureContext) return 'Push needs HTTPS (or localhost): reach kaged through the sidecar or a tunnel with TLS.';
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !('Notification' in window)) {
    return 'This browser has no Web Push here. On iPhone and iPad, add kaged to the Home Screen first (Share → Add to Home Screen) and open it from there.';
  }
  return null;
}

function Notifications() {
  const api = useApi();
  const [info, setInfo] = useState<PushInfo | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [mine, setMine] = useState(() => localStorage.getItem(MINE));
  const [label, setLabel] = useState(() => (/iPhone|iPad|Android/.test(navigator.userAgent) ? 'phone' : 'browser'));
  const refresh = () => api.pushInfo().then(setInfo, setError);
  useEffect(() => void refresh(), [api]);
  const why = unsupported();

  // Asked on a tap: iOS grants notification permission only from a user gesture.
  const enable = async () => {
    if (!info) return;
    setBusy(true);
    try {
      const permission = await Notification.requestPermission();
      if (permission !== 'granted') throw new Error(`notifications are ${permission} for this site; allow them in the browser's site settings`);
      const reg = await navigator.serviceWorker.ready;
      const sub =
        (await reg.pushManager.getSubscription()) ??
        (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytesOf(info.vapid_public_key) }));
      const json = sub.toJSON();
      const stored = await api.subscribePush({
        endpoint: json.endpoint ?? sub.endpoint,
        keys: { p256dh: json.keys?.p256dh ?? '', auth: json.keys?.auth ?? '' },
        label: label.trim() || null,
      });
      localStorage.setItem(MINE, stored.id);
      setMine(stored.id);
      setError(null);
      await refresh();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (id: string) => {
    try {
      await api.revokePush(id);
      if (id === mine) {
        const reg = await navigator.serviceWorker?.getRegistration();
        await (await reg?.pushManager.getSubscription())?.unsubscribe();
        localStorage.removeItem(MINE);
        setMine(null);
      }
      setError(null);
      await refresh();
    } catch (e) {
      setError(e);
    }
  };

  return (
    <section aria-labelledby="push-h">
      <h2 id="push-h">Notifications</h2>
      <p class="muted">
        A push when an agent waits for you, finishes or fails. It carries the project, the agent and a one-line reason, never a secret
        or a command line.
      </p>
      <ErrorBox error={error} />
      {why ? (
        <p class="warn" id="push-unsupported">
          {why}
        </p>
      ) : (
        <div class="row">
          <label>
            Device name{' '}
            <input value={label} maxLength={80} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} />
          </label>
          <button class="btn" id="push-enable" disabled={busy || !info} onClick={() => void enable()}>
            Notify this device
          </button>
        </div>
      )}
      <ul class="device-list" id="push-devices">
        {info?.subscriptions.map((s) => (
          <li key={s.id} data-id={s.id}>
            <strong>{s.label ?? 'unnamed'}</strong>
            {s.id === mine && <span class="badge">this device</span>}
            <span class="muted">{s.service}</span>
            <Time ts={s.created_at} />
            <button class="btn small danger" onClick={() => void revoke(s.id)}>
              Revoke
            </button>
          </li>
        ))}
        {info && info.subscriptions.length === 0 && <li class="muted">No device gets notifications yet.</li>}
      </ul>
    </section>
  );
}

function KeyBarSettings() {
  const api = useApi();
  const [keys, setKeys] = useKeys();
  const [error, setError] = useState<unknown>(null);
  const toggle = (k: KeyId, on: boolean) => {
    const before = keys;
    const chosen = ALL_KEYS.filter((x) => (x === k ? on : keys.includes(x)));
    setKeys(chosen);
    api.setKeybar({ keys: chosen }).then(
      (c) => {
        saveKeys(c.keys);
        setError(null);
      },
      (e: unknown) => {
        setKeys(before);
        setError(e);
      },
    );
  };
  return (
    <section aria-labelledby="keys-h">
      <h2 id="keys-h">Key bar</h2>
      <p class="muted">Which keys the terminal's key bar shows on a touch screen: yours, on every device you sign in from.</p>
      <ErrorBox error={error} />
      <fieldset class="key-choice" id="keybar-settings">
        {ALL_KEYS.map((k) => (
          <label key={k}>
            <input type="checkbox" checked={keys.includes(k)} onChange={(e) => toggle(k, (e.target as HTMLInputElement).checked)} />{' '}
            {KEY_LABELS[k][0]}
          </label>
        ))}
      </fieldset>
    </section>
  );
}

export function DevicePage() {
  return (
    <Page title="This device">
      <Notifications />
      <KeyBarSettings />
    </Page>
  );
}
