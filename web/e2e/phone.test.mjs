// End-to-end: kaged on a phone (390×844, touch). The key bar sends the right bytes (every key,
// sticky and locked Ctrl, Alt), Paste goes in bracketed when the app enabled mode 2004, the bar
// stays in view; and push: the page subscribes, an agent rings the bell, the daemon pushes to a
// fake push service here (which checks the VAPID JWT and decrypts the aes128gcm payload with the
// subscription's private key), the payload is delivered to the real service worker through
// DevTools, and the worker shows the notification.
//
// Chromium's own push service is Google's, which a test cannot reach offline: the page's
// `pushManager.subscribe()` is therefore answered by a stand-in that returns this test's
// endpoint and keys. Everything from the daemon's side on is real.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createDecipheriv, createECDH, createHmac, createPublicKey, randomBytes, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon, PHONE, launchBrowser, shoot } from './daemon.mjs';

const b64url = (b) => Buffer.from(b).toString('base64url');

/** Every line of the terminal's buffer, wrapped lines joined. */
function bufferText(page) {
  return page.evaluate(() => {
    const term = document.querySelector('.term-host')?.kagedTerm;
    if (!term) return '';
    const buf = term.buffer.active;
    let out = '';
    for (let y = 0; y < buf.length; y++) {
      const line = buf.getLine(y);
      if (!line) continue;
      out += (y > 0 && !line.isWrapped ? '\n' : '') + line.translateToString(true);
    }
    return out;
  });
}

async function waitForText(page, needle, timeout = 15_000) {
  const end = Date.now() + timeout;
  for (;;) {
    const text = await bufferText(page);
    if (text.includes(needle)) return text;
    if (Date.now() > end) throw new Error(`terminal never showed ${JSON.stringify(needle)}; it shows:\n${text}`);
    await page.waitForTimeout(100);
  }
}

/** Calls the API from the page, the way the UI does (page key, CSRF token). */
function apiCall(page, method, path, body) {
  return page.evaluate(
    async ([method, path, body]) => {
      const key = localStorage.getItem('kaged-page-key') ?? '';
      const me = await (await fetch('/api/v1/me', { headers: { 'X-Kaged-Page': key } })).json();
      const res = await fetch(path, {
        method,
        headers: { 'X-Kaged-Page': key, 'X-Kaged-CSRF': me.csrf_token, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: await res.json() };
    },
    [method, path, body],
  );
}

/** Prints each byte it reads as hex, raw mode, no echo; `bracketed` turns mode 2004 on first,
 *  `alternate` switches to the alternate screen first.
 *  (`dd` reads the bytes: bash's own `read -n` turns signals back on, so ^C would not arrive.) */
function hexReader(bracketed, alternate = false) {
  const script =
    `stty raw -echo; ${alternate ? "printf '\\033[?1049h'; " : ''}${bracketed ? "printf '\\033[?2004h'; " : ''}printf 'ready\\r\\n'; ` +
    `while :; do b=$(dd bs=1 count=1 2>/dev/null | od -An -tx1); [ -n "$b" ] || exit; printf '%s ' $b; done`;
  return ['sh', '-c', script];
}

async function openSession(page, daemon, project, body) {
  const r = await apiCall(page, 'POST', `/api/v1/projects/${project}/sessions`, body);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  await page.goto(`${daemon.url}/#/sessions/${r.json.id}`);
  await page.locator('#conn-state', { hasText: 'live' }).waitFor();
  return r.json;
}

const key = (page, k) => page.locator(`#keybar [data-key="${k}"]`).tap();

/** The fake push service: keeps each request for the test. */
function pushService() {
  const got = [];
  const waiters = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(201).end();
      const r = { path: req.url, headers: req.headers, body: Buffer.concat(chunks) };
      got.push(r);
      waiters.splice(0).forEach((w) => w());
    });
  });
  return new Promise((ok) =>
    server.listen(0, '127.0.0.1', () =>
      ok({
        origin: `http://127.0.0.1:${server.address().port}`,
        close: () => server.close(),
        async next(timeout = 15_000) {
          const end = Date.now() + timeout;
          while (!got.length) {
            if (Date.now() > end) throw new Error('no push reached the fake push service');
            await new Promise((r) => (waiters.push(r), setTimeout(r, 200)));
          }
          return got.shift();
        },
      }),
    ),
  );
}

const hkdf = (salt, ikm, info, len) => {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  return createHmac('sha256', prk).update(Buffer.concat([info, Buffer.from([1])])).digest().subarray(0, len);
};

/** RFC 8291/8188: decrypts one aes128gcm record with the browser's key pair and secret. */
function decrypt(body, ua, auth) {
  const salt = body.subarray(0, 16);
  const idlen = body[20];
  const asPublic = body.subarray(21, 21 + idlen);
  const record = body.subarray(21 + idlen);
  const shared = ua.computeSecret(asPublic);
  const info = Buffer.concat([Buffer.from('WebPush: info\0'), ua.getPublicKey(), asPublic]);
  const ikm = hkdf(auth, shared, info, 32);
  const cek = hkdf(salt, ikm, Buffer.from('Content-Encoding: aes128gcm\0'), 16);
  const nonce = hkdf(salt, ikm, Buffer.from('Content-Encoding: nonce\0'), 12);
  const d = createDecipheriv('aes-128-gcm', cek, nonce);
  d.setAuthTag(record.subarray(record.length - 16));
  const plain = Buffer.concat([d.update(record.subarray(0, record.length - 16)), d.final()]);
  // The last record ends with the delimiter 0x02, then zero padding.
  const end = plain.lastIndexOf(2);
  assert.ok(end >= 0, 'the record has its delimiter');
  return JSON.parse(plain.subarray(0, end).toString('utf8'));
}

/** RFC 8292: the VAPID JWT is signed by `vapidPublic` for `origin`, with `exp` and `sub`. */
function checkVapid(header, vapidPublic, origin) {
  const m = /^vapid t=([^,]+), k=(.+)$/.exec(header ?? '');
  assert.ok(m, `a VAPID Authorization header: ${header}`);
  const [, token, k] = m;
  assert.equal(k, vapidPublic);
  const raw = Buffer.from(vapidPublic, 'base64url');
  const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64url(raw.subarray(1, 33)), y: b64url(raw.subarray(33)) }, format: 'jwk' });
  const [h, p, s] = token.split('.');
  assert.ok(verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url')), 'the JWT signature checks out');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  assert.equal(JSON.parse(Buffer.from(h, 'base64url').toString()).alg, 'ES256');
  assert.equal(claims.aud, origin);
  assert.equal(claims.sub, 'mailto:kaged@localhost');
  const now = Date.now() / 1000;
  assert.ok(claims.exp > now && claims.exp <= now + 24 * 3600, `exp within 24 h: ${claims.exp}`);
}

describe('phone', () => {
  let daemon, browser, context, page, projectDir;

  before(async () => {
    daemon = await Daemon.start();
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: PHONE, hasTouch: true, isMobile: true });
    await context.grantPermissions(['clipboard-read', 'clipboard-write', 'notifications'], { origin: daemon.url });
    page = await context.newPage();
    await page.goto(daemon.launchUrl);
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    const dir = daemon.project(
      'phone',
      'version: 1\nproject: phone\nprimary:\n  command: [sh, -c, "printf \'thinking\\\\n\'; sleep 0.5; printf \'Allow it? \\\\a\'; sleep 60"]\n' +
        '  agents:\n    quick:\n      command: [sh, -c, "echo finished"]\n' +
        '    careful:\n      command: [sh, ask.sh]\n      cage:\n        network: {allow: [api.example.com]}\n        limits: {walltime: 10m}\n',
    );
    // What Claude Code's PreToolUse hook does: hand the call to kaged's helper in the cage and
    // print the decision it gets back.
    writeFileSync(
      join(dir, 'ask.sh'),
      'printf \'{"tool_name":"Bash","tool_input":{"command":"rm -rf build && make release","description":"Rebuild the release"},"cwd":"%s"}\' "$PWD" |\n' +
        '  /run/kaged-agent/kaged __hook pre-tool-use\necho "hook-exit=$?"\nsleep 60\n',
    );
    projectDir = dir;
    const r = await apiCall(page, 'POST', '/api/v1/projects', { path: dir });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  });

  after(async () => {
    await browser?.close();
    await daemon?.stop();
  });

  it('the key bar sends each key, sticky and locked Ctrl, and Alt', async () => {
    await openSession(page, daemon, 'phone', { argv: hexReader(false) });
    await waitForText(page, 'ready');
    const bar = await page.locator('#keybar').boundingBox();
    assert.ok(bar && bar.y >= 0 && bar.y + bar.height <= PHONE.height, `the key bar is in view: ${JSON.stringify(bar)}`);
    const steps = [
      ['esc', '1b '],
      ['tab', '09 '],
      ['stab', '1b 5b 5a '],
      ['left', '1b 5b 44 '],
      ['up', '1b 5b 41 '],
      ['down', '1b 5b 42 '],
      ['right', '1b 5b 43 '],
      ['pgup', '1b 5b 35 7e '],
      ['pgdn', '1b 5b 36 7e '],
      ['ctrlc', '03 '],
    ];
    let want = '';
    for (const [k, hex] of steps) {
      await key(page, k);
      want += hex;
      await waitForText(page, want);
    }
    // Sticky Ctrl: one tap applies to the next key typed on the (soft) keyboard only.
    await key(page, 'ctrl');
    assert.equal(await page.locator('#keybar [data-key="ctrl"]').getAttribute('aria-pressed'), 'true');
    await page.keyboard.type('c');
    want += '03 ';
    await waitForText(page, want);
    await page.keyboard.type('c');
    want += '63 ';
    await waitForText(page, want);
    // Twice locks it until a third tap; it also modifies the bar's own keys.
    await key(page, 'ctrl');
    await key(page, 'ctrl');
    await page.keyboard.type('ab');
    await key(page, 'up');
    want += '01 02 1b 5b 31 3b 35 41 ';
    await waitForText(page, want);
    await key(page, 'ctrl');
    assert.equal(await page.locator('#keybar [data-key="ctrl"]').getAttribute('aria-pressed'), 'false');
    // Alt once: ESC before the next key.
    await key(page, 'alt');
    await page.keyboard.type('xy');
    want += '1b 78 79 ';
    await waitForText(page, want);
    await shoot(page, 'phone-keybar');
  });

  it('Paste goes in bracketed when the app enabled mode 2004, plain otherwise', async () => {
    await openSession(page, daemon, 'phone', { argv: hexReader(true) });
    await waitForText(page, 'ready');
    assert.equal(await page.evaluate(() => document.querySelector('.term-host').kagedTerm.modes.bracketedPasteMode), true);
    await page.evaluate(() => navigator.clipboard.writeText('hi'));
    await key(page, 'paste');
    await waitForText(page, '1b 5b 32 30 30 7e 68 69 1b 5b 32 30 31 7e ');

    await openSession(page, daemon, 'phone', { argv: hexReader(false) });
    await waitForText(page, 'ready');
    await key(page, 'paste');
    const text = await waitForText(page, '68 69 ');
    assert.ok(!text.includes('1b 5b 32 30 30 7e'), 'no brackets without mode 2004');
  });

  it('Copy shows the screen as text to select', async () => {
    await key(page, 'copy');
    const shown = await page.locator('#copy-view pre').innerText();
    assert.match(shown, /ready/);
    await page.getByRole('button', { name: 'Close' }).tap();
  });

  it('a finger scrolls the scrollback with the keyboard up, and sends a full-screen app the arrows a wheel would', async () => {
    const pos = () =>
      page.evaluate(() => {
        const b = document.querySelector('.term-host').kagedTerm.buffer.active;
        return { y: b.viewportY, base: b.baseY };
      });
    const cdp = await context.newCDPSession(page);
    /** One finger dragged `dy` px (down when positive) across the terminal, as a phone reports
     *  it: touchstart, a touchmove every 20 px, touchend. (CDP's synthesized scroll gesture
     *  scrolls in the compositor without the touchmove events a page sees on a phone.) */
    const swipe = async (dy) => {
      const box = await page.locator('.term-host').boundingBox();
      const x = box.x + box.width / 2;
      let y = dy > 0 ? box.y + 20 : box.y + box.height - 20;
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x, y }] });
      for (let moved = 0; moved < Math.abs(dy); moved += 20) {
        y += Math.sign(dy) * 20;
        await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x, y }] });
      }
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    };
    await openSession(page, daemon, 'phone', { argv: ['sh', '-c', 'seq 1 300; sleep 60'] });
    await waitForText(page, '300');
    const bottom = await pos();
    assert.ok(bottom.base > 200 && bottom.y === bottom.base, JSON.stringify(bottom));
    // The terminal has focus, so on a phone the soft keyboard is up.
    assert.equal(await page.evaluate(() => document.activeElement?.classList.contains('xterm-helper-textarea')), true);
    await swipe(300);
    const up = await pos();
    assert.ok(up.y < bottom.y - 5, `a drag down shows earlier lines: ${JSON.stringify(up)}`);
    await swipe(-500);
    assert.equal((await pos()).y, bottom.base, 'a drag up goes back to the end');
    await shoot(page, 'phone-scrolled');

    await openSession(page, daemon, 'phone', { argv: hexReader(false, true) });
    await waitForText(page, 'ready');
    await swipe(200);
    await waitForText(page, '1b 5b 41 ');
    await swipe(-200);
    await waitForText(page, '1b 5b 42 ');
  });

  it("the key bar is the operator's choice, on every device they sign in from", async () => {
    await page.goto(`${daemon.url}/#/device`);
    const settings = page.locator('#keybar-settings');
    for (const label of ['PgUp', 'PgDn']) {
      await settings.getByLabel(label, { exact: true }).uncheck();
    }
    const want = ['esc', 'tab', 'stab', 'ctrl', 'alt', 'left', 'up', 'down', 'right', 'ctrlc', 'paste', 'copy'];
    for (let i = 0; ; i++) {
      const r = await apiCall(page, 'GET', '/api/v1/me/keybar');
      if (JSON.stringify(r.json.keys) === JSON.stringify(want)) break;
      assert.ok(i < 50, `the daemon never stored the choice: ${JSON.stringify(r.json)}`);
      await page.waitForTimeout(100);
    }
    // Another device: a fresh browser with nothing in its storage, signed in anew.
    const tablet = await browser.newContext({ viewport: { width: 820, height: 1180 }, hasTouch: true, isMobile: true });
    try {
      const other = await tablet.newPage();
      await other.goto(await daemon.authOpen());
      await other.getByRole('heading', { name: 'Projects' }).waitFor();
      const r = await apiCall(other, 'POST', '/api/v1/projects/phone/sessions', { argv: ['sleep', '30'] });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await other.goto(`${daemon.url}/#/sessions/${r.json.id}`);
      await other.locator('#keybar [data-key="esc"]').waitFor();
      await other.waitForFunction(() => !document.querySelector('#keybar [data-key="pgup"]'));
      const shown = await other.locator('#keybar [data-key]').evaluateAll((ks) => ks.map((k) => k.dataset.key));
      assert.deepEqual(shown, want);
    } finally {
      await tablet.close();
    }
    // Back as it was, for the tests after this one.
    for (const label of ['PgUp', 'PgDn']) {
      await settings.getByLabel(label, { exact: true }).check();
    }
  });

  it('subscribes, and the service worker shows the push the daemon sent when an agent waits', async () => {
    const service = await pushService();
    const ua = createECDH('prime256v1');
    ua.generateKeys();
    const auth = randomBytes(16);
    const endpoint = `${service.origin}/push/chromium`;
    await page.evaluate(
      ([endpoint, p256dh, auth]) => {
        // Stands in for Chromium's push service (Google's, unreachable offline).
        const fake = {
          endpoint,
          expirationTime: null,
          toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
          unsubscribe: async () => true,
        };
        PushManager.prototype.subscribe = async () => fake;
        PushManager.prototype.getSubscription = async () => null;
      },
      [endpoint, b64url(ua.getPublicKey()), b64url(auth)],
    );
    await page.goto(`${daemon.url}/#/device`);
    await page.getByRole('heading', { name: 'Notifications' }).waitFor();
    await page.locator('#push-enable').tap();
    await page.locator('#push-devices li', { hasText: 'this device' }).waitFor();
    const info = (await apiCall(page, 'GET', '/api/v1/push')).json;
    assert.equal(info.subscriptions.length, 1);
    await shoot(page, 'phone-device');

    const cdp = await context.newCDPSession(page);
    const registrations = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    await cdp.send('ServiceWorker.enable');
    await page.evaluate(() => navigator.serviceWorker.ready);

    const run = await apiCall(page, 'POST', '/api/v1/projects/phone/sessions', { agent: 'primary' });
    assert.equal(run.status, 200, JSON.stringify(run.json));
    const got = await service.next();
    assert.equal(got.path, '/push/chromium');
    assert.equal(got.headers['content-encoding'], 'aes128gcm');
    checkVapid(got.headers.authorization, info.vapid_public_key, service.origin);
    const message = decrypt(got.body, ua, auth);
    assert.deepEqual(message, {
      title: 'phone: primary is waiting for you',
      body: 'Allow it?',
      url: `/#/sessions/${run.json.id}`,
      session_id: run.json.id,
      status: 'waiting',
    });

    const reg = registrations.find((r) => r.scopeURL === `${daemon.url}/` && !r.isDeleted);
    assert.ok(reg, `the service worker is registered: ${JSON.stringify(registrations)}`);
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: daemon.url, registrationId: reg.registrationId, data: JSON.stringify(message) });
    let shown = [];
    for (let i = 0; i < 50 && !shown.length; i++) {
      await page.waitForTimeout(200);
      shown = await page.evaluate(async () =>
        (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, body: n.body, url: n.data?.url, tag: n.tag })),
      );
    }
    assert.deepEqual(shown, [
      { title: 'phone: primary is waiting for you', body: 'Allow it?', url: `/#/sessions/${run.json.id}`, tag: `kaged-session-${run.json.id}` },
    ]);
    service.close();
  });

  it('the projects page lists every agent run, the one waiting for the operator first', async () => {
    // A second run that has already ended, so there is something to sort behind the wait.
    const done = await apiCall(page, 'POST', '/api/v1/projects/phone/sessions', { agent: 'primary.quick' });
    assert.equal(done.status, 200, JSON.stringify(done.json));
    await page.goto(`${daemon.url}/#/`);
    await page.locator('#agent-runs li[data-status="done"]').waitFor({ timeout: 15_000 });
    const rows = await page.locator('#agent-runs li').evaluateAll((ls) => ls.map((l) => l.dataset.status));
    assert.deepEqual(rows, ['waiting', 'done']);
    assert.match(await page.locator('#agent-runs li').first().innerText(), /primary[\s\S]*waiting for you: Allow it\?/);
    await shoot(page, 'agents-overview');
  });
  it('the approval card shows what will run and where, fits the phone, and a denial with a note reaches the agent', async () => {
    const run = await openSession(page, daemon, 'phone', { agent: 'primary.careful', cols: 60, rows: 20 });
    const card = page.getByRole('alertdialog', { name: 'primary.careful asks to use Bash' });
    await card.waitFor({ timeout: 15_000 });
    const text = await card.innerText();
    for (const want of [
      'rm -rf build && make release',
      'Rebuild the release',
      `Working directory\n${projectDir}`,
      `${projectDir} (rw)`,
      'allow api.example.com',
      'walltime 10m',
      'denied after',
    ]) {
      assert.ok(text.includes(want), `the card shows ${JSON.stringify(want)}:\n${text}`);
    }
    // On the phone: within the screen's width, both answers in reach without zooming.
    const box = await card.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width, `the card fits: ${JSON.stringify(box)}`);
    for (const name of ['Approve', 'Deny']) {
      const b = await card.getByRole('button', { name }).boundingBox();
      assert.ok(b && b.x + b.width <= PHONE.width && b.height >= 32, `${name} is tappable: ${JSON.stringify(b)}`);
    }
    await shoot(page, 'phone-approval');

    await card.getByRole('textbox').fill('use make -j2 instead');
    await card.getByRole('button', { name: 'Deny' }).tap();
    await card.waitFor({ state: 'detached', timeout: 15_000 });
    // The hook printed Claude Code's answer: denied, with the operator's note as the reason.
    const shown = await waitForText(page, 'hook-exit=0');
    const reply = JSON.parse(shown.slice(shown.indexOf('{"hookSpecificOutput"'), shown.indexOf('hook-exit=0')).replace(/\n/g, ''));
    assert.deepEqual(reply, {
      hookSpecificOutput: { hookEventName: 'PreToolUse', permissionDecision: 'deny', permissionDecisionReason: 'use make -j2 instead' },
    });
    // Both the request and the answer are audited, the answer with who gave it and from where.
    const audit = (await apiCall(page, 'GET', `/api/v1/audit?type=approval.&session_id=${run.id}`)).json.events;
    const kinds = audit.map((e) => e.type).sort();
    assert.deepEqual(kinds, ['approval.answered', 'approval.requested']);
    const answered = audit.find((e) => e.type === 'approval.answered');
    assert.equal(answered.data.outcome.decision, 'deny');
    assert.equal(answered.data.outcome.note, 'use make -j2 instead');
    assert.ok(answered.actor && answered.data.from, JSON.stringify(answered));
    await apiCall(page, 'DELETE', `/api/v1/sessions/${run.id}`);
  });
});
