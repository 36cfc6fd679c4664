// kaged's service worker: it shows the push notifications the daemon sends when an agent
// needs the operator, and on a tap focuses an open kaged tab (or opens one) at the session.
// It caches nothing and handles no fetch: every request still crosses the daemon's gate.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** Only pages of this UI: a hash route such as `/#/sessions/ID`. */
function pageUrl(url) {
  return typeof url === 'string' && url.startsWith('/#/') ? url : '/#/';
}

self.addEventListener('push', (event) => {
  let msg = {};
  try {
    msg = event.data ? event.data.json() : {};
  } catch {
    msg = { title: 'kaged', body: event.data ? event.data.text() : '' };
  }
  const title = typeof msg.title === 'string' && msg.title ? msg.title : 'kaged';
  event.waitUntil(
    self.registration.showNotification(title, {
      body: typeof msg.body === 'string' ? msg.body : '',
      // One notification per session: a newer state replaces the older one.
      tag: msg.session_id ? `kaged-session-${msg.session_id}` : 'kaged',
      renotify: true,
      icon: '/assets/kaged-icon-192.png',
      data: { url: pageUrl(msg.url), status: msg.status ?? null, session_id: msg.session_id ?? null },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = pageUrl(event.notification.data && event.notification.data.url);
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const open = windows.find((w) => new URL(w.url).origin === self.location.origin);
      if (open) {
        await open.focus();
        open.postMessage({ type: 'kaged.open', url });
        return;
      }
      await self.clients.openWindow(url);
    })(),
  );
});
