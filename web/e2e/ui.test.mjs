// End-to-end: the web UI that the real `kaged` binary serves, driven in headless Chromium.
// `npm run test:e2e` (KAGED_BIN = the daemon, default ../target/debug/kaged).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon, DESKTOP, launchBrowser, shoot } from './daemon.mjs';

const rows = (page) => page.$$eval('.term-host .xterm-rows > div', (rs) => rs.map((r) => (r.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd()));

/** Waits until a terminal row (trimmed) matches `re`. (No `new Function` here: the page's CSP forbids eval.) */
async function waitForRow(page, re, timeout = 15_000) {
  try {
    await page.waitForFunction(
    ([src, flags]) => {
      const r = new RegExp(src, flags);
      return [...document.querySelectorAll('.term-host .xterm-rows > div')].some((row) => r.test((row.textContent ?? '').replace(/\u00a0/g, ' ').trim()));
    },
    [re.source, re.flags],
    { timeout },
  );
  } catch (e) {
    const state = await page.locator('#conn-state').innerText().catch(() => '?');
    throw new Error(`no terminal row matches ${re} (connection: ${state}); rows:\n${(await rows(page)).join('\n')}`, { cause: e });
  }
}

/** Collects CSP violations and requests to any other host, so every test can assert on them. */
async function watch(context, base) {
  const foreign = [];
  context.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(base) && !u.startsWith(base.replace('http:', 'ws:')) && !u.startsWith('data:')) foreign.push(u);
  });
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber} ${e.sample}`),
    );
  });
  return foreign;
}

async function typeLine(page, text) {
  await page.locator('.term-host .xterm').click();
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

/** Routes a page's PTY sockets through the test: `drop()` closes the open one and refuses new
 *  ones until `restore()`. */
async function controlledLine(page) {
  let down = false;
  let current;
  await page.routeWebSocket(/\/api\/v1\/sessions\/[^/]+\/pty/, (ws) => {
    if (down) return ws.close({ code: 1013, reason: 'test keeps the line down' });
    current = ws;
    ws.connectToServer();
  });
  return {
    drop: async () => {
      down = true;
      await current.close({ code: 1012, reason: 'test drops the socket' });
    },
    restore: () => {
      down = false;
    },
  };
}

describe('loopback mode', () => {
  let daemon, browser, context, page, foreign, sessionUrl;

  before(async () => {
    daemon = await Daemon.start();
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: DESKTOP });
    foreign = await watch(context, daemon.url);
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    await daemon?.stop();
  });

  it('launch URL sets the session cookie and leaves the token out of the address bar', async () => {
    const res = await page.goto(daemon.launchUrl);
    assert.equal(res.status(), 200);
    // The 303 lands on / with the page key in the fragment; the page stores it and drops it.
    assert.equal(page.url(), `${daemon.url}/#/`, 'no token and no page key in the address bar');
    const key = await page.evaluate(() => localStorage.getItem('kaged-page-key'));
    assert.match(key ?? '', /^[A-Za-z0-9_-]{40,}$/, 'the page key is kept in this origin');
    const port = new URL(daemon.daemonUrl || daemon.url).port;
    const cookies = await context.cookies(daemon.url);
    const c = cookies.find((c) => c.name === `kaged_session_${port}`);
    assert.ok(c, `cookie kaged_session_${port} is set (got ${cookies.map((c) => c.name)})`);
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Lax');
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    const headers = res.headers();
    assert.match(headers['content-security-policy'] ?? '', /default-src 'self'/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['referrer-policy'], 'no-referrer');
    assert.match(headers['content-security-policy'] ?? '', /frame-ancestors 'none'/);
    // A used launch URL is dead.
    const again = await (await browser.newContext()).request.get(daemon.launchUrl, { maxRedirects: 0 });
    assert.equal(again.status(), 401);
    assert.equal(await page.locator('#insecure-banner').count(), 0, 'no insecure banner in loopback mode');
  });

  it('answers 401 without the cookie, and the UI says how to sign in', async () => {
    const stranger = await browser.newContext({ viewport: DESKTOP });
    const p = await stranger.newPage();
    // (`daemonUrl` in preview mode, whose `/` is not behind auth.)
    const res = await p.goto(`${daemon.daemonUrl || daemon.url}/`);
    assert.equal(res.status(), 401);
    await p.getByText('kaged auth open').first().waitFor();
    const api = await stranger.request.get(`${daemon.url}/api/v1/me`);
    assert.equal(api.status(), 401);
    assert.equal((await api.json()).error.code, 'unauthenticated');
    await stranger.close();

    // Signed in, then the cookie goes (as after a daemon restart): the next API call gets 401
    // and the UI shows its own screen instead of a broken page.
    const lost = await browser.newContext({ viewport: DESKTOP });
    const r2 = await lost.newPage();
    await r2.goto(await daemon.authOpen());
    await r2.getByRole('heading', { name: 'Projects' }).waitFor();
    await lost.clearCookies();
    await r2.evaluate(() => (location.hash = '#/status'));
    await r2.locator('#unauthenticated').waitFor();
    const text = await r2.locator('#unauthenticated').innerText();
    assert.match(text, /Not signed in/);
    assert.match(text, /run kaged auth open on the machine running kaged and open the URL it prints/i);
    await shoot(r2, 'signed-out');
    await lost.close();
  });

  it('refuses a write without the CSRF token, and accepts it with the token', async () => {
    const dir = daemon.project('csrf-check');
    const without = await page.evaluate(async (path) => {
      const r = await fetch('/api/v1/projects', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Kaged-Page': localStorage.getItem('kaged-page-key') },
        body: JSON.stringify({ path }),
      });
      return { status: r.status, body: await r.json() };
    }, dir);
    assert.equal(without.status, 403);
    assert.equal(without.body.error.code, 'forbidden');
    assert.match(without.body.error.message, /CSRF/);
    const withToken = await page.evaluate(async (path) => {
      const page = localStorage.getItem('kaged-page-key');
      const me = await (await fetch('/api/v1/me', { credentials: 'same-origin', headers: { 'X-Kaged-Page': page } })).json();
      const r = await fetch('/api/v1/projects', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Kaged-CSRF': me.csrf_token, 'X-Kaged-Page': page },
        body: JSON.stringify({ path }),
      });
      return r.status;
    }, dir);
    assert.equal(withToken, 200);
  });

  it('refuses the cookie without the page key, and signs out for good', async () => {
    const bare = await page.evaluate(async () => (await fetch('/api/v1/me', { credentials: 'same-origin' })).status);
    assert.equal(bare, 401, 'a cookie alone (as another port could capture it) is not a credential');
    const other = await browser.newContext({ viewport: DESKTOP });
    const p = await other.newPage();
    await p.goto(await daemon.authOpen());
    await p.getByRole('heading', { name: 'Projects' }).waitFor();
    await p.locator('#sign-out').click();
    await p.locator('#unauthenticated').waitFor();
    // The cookie is gone too: a reload gets the daemon's own sign-in page.
    const again = await p.reload();
    assert.equal(again.status(), 401);
    await p.getByText('Not signed in').first().waitFor();
    await other.close();
  });

  it('shows DSL diagnostics for a broken project file', async () => {
    const dir = daemon.project('broken', 'version: 1\nproject: Not A Slug\nbogus: 1\n');
    await page.goto(`${daemon.url}/#/`);
    await page.getByLabel(/Absolute path/).fill(dir);
    await page.getByRole('button', { name: 'Load' }).click();
    const diags = page.locator('.diagnostics li');
    await diags.first().waitFor();
    const text = await page.locator('.diagnostics').innerText();
    assert.match(text, /project\.yaml:\d+:\d+/);
    await shoot(page, 'project-invalid');
  });

  it('loads a project by path and starts a shell; typing `echo hi` shows hi', async () => {
    const dir = daemon.project('demo', 'version: 1\nproject: demo\ndescription: The e2e demo project\n');
    await page.goto(`${daemon.url}/#/`);
    await page.getByLabel(/Absolute path/).fill(dir);
    await page.getByRole('button', { name: 'Load' }).click();
    await page.getByRole('heading', { name: 'demo' }).waitFor();
    await page.getByRole('button', { name: 'Shell' }).click();
    await page.waitForURL(/#\/sessions\//);
    sessionUrl = page.url();
    await page.locator('#conn-state', { hasText: 'live' }).waitFor();
    await typeLine(page, 'echo hi');
    await waitForRow(page, /^hi$/);
    assert.deepEqual(await page.evaluate(() => window.__csp), [], 'no CSP violations on the terminal page');
  });

  it('replays the scrollback after a reload', async () => {
    await page.reload();
    await page.locator('#conn-state', { hasText: 'live' }).waitFor();
    await waitForRow(page, /echo hi$/);
    await waitForRow(page, /^hi$/);
  });

  it('lets two tabs watch and type into one session', async () => {
    const second = await context.newPage();
    await second.goto(sessionUrl);
    await second.locator('#conn-state', { hasText: 'live' }).waitFor();
    await waitForRow(second, /^hi$/);
    await typeLine(second, 'echo from-tab-$((40+2))');
    await waitForRow(second, /^from-tab-42$/);
    await waitForRow(page, /^from-tab-42$/);
    await second.close();
  });

  it('reconnects a dropped socket and resumes from its offset without replaying twice', async () => {
    const p = await context.newPage();
    let sockets = 0;
    let current;
    await p.routeWebSocket(/\/api\/v1\/sessions\/[^/]+\/pty/, (ws) => {
      sockets += 1;
      current = ws;
      ws.connectToServer();
    });
    await p.goto(sessionUrl);
    await p.locator('#conn-state', { hasText: 'live' }).waitFor();
    await waitForRow(p, /^from-tab-42$/);
    await current.close({ code: 1012, reason: 'test drops the socket' });
    await p.locator('#conn-state', { hasText: 'reconnecting' }).waitFor();
    await p.locator('#conn-state', { hasText: 'live' }).waitFor({ timeout: 10_000 });
    assert.ok(sockets >= 2, 'a second socket was opened');
    await typeLine(p, 'echo after-$((1+1))-reconnect');
    await waitForRow(p, /^after-2-reconnect$/);
    const all = await rows(p);
    assert.equal(all.filter((r) => r === 'hi').length, 1, `"hi" appears once, not replayed twice:\n${all.join('\n')}`);
    await p.close();
  });

  it('keeps what is typed while the socket is down, shows it as pending, and delivers it once', async () => {
    const p = await context.newPage();
    const line = await controlledLine(p);
    await p.goto(sessionUrl);
    await p.locator('#conn-state', { hasText: 'live' }).waitFor();
    await line.drop();
    await p.locator('#conn-state', { hasText: /reconnecting( in \d+s|…)/ }).waitFor();
    await typeLine(p, 'echo queued-$((2+3))');
    await p.locator('#input-pending', { hasText: 'echo queued-$((2+3))⏎' }).waitFor();
    line.restore();
    await p.getByRole('button', { name: 'Retry now' }).click().catch(() => {});
    await p.locator('#conn-state', { hasText: 'live' }).waitFor({ timeout: 20_000 });
    await waitForRow(p, /^queued-5$/);
    await p.locator('#input-pending').waitFor({ state: 'detached' });
    const all = await rows(p);
    assert.equal(all.filter((r) => r === 'queued-5').length, 1, `delivered once:\n${all.join('\n')}`);
    await p.close();
  });

  it('resends unacknowledged input after a drop without typing it twice', async () => {
    const p = await context.newPage();
    let deaf = false;
    let current;
    await p.routeWebSocket(/\/api\/v1\/sessions\/[^/]+\/pty/, (ws) => {
      current = ws;
      const server = ws.connectToServer();
      // Daemon → page goes quiet while `deaf`: keystrokes arrive, their acks and echo do not.
      server.onMessage((m) => {
        if (!deaf) ws.send(m);
      });
    });
    await p.goto(sessionUrl);
    await p.locator('#conn-state', { hasText: 'live' }).waitFor();
    deaf = true;
    await typeLine(p, 'echo deaf-$((3*3))');
    await p.locator('#input-pending', { hasText: 'echo deaf' }).waitFor();
    deaf = false;
    await current.close({ code: 1012, reason: 'test drops the socket' });
    await p.locator('#conn-state', { hasText: 'live' }).waitFor({ timeout: 20_000 });
    await waitForRow(p, /^deaf-9$/);
    await p.locator('#input-pending').waitFor({ state: 'detached' });
    const all = await rows(p);
    assert.equal(all.filter((r) => r === 'deaf-9').length, 1, `ran once:\n${all.join('\n')}`);
    assert.equal(all.filter((r) => r.endsWith('echo deaf-$((3*3))')).length, 1, `typed once:\n${all.join('\n')}`);
    await p.close();
  });

  it('says which queued input never reached a session that ended meanwhile', async () => {
    await page.goto(`${daemon.url}/#/projects/demo`);
    await page.getByRole('button', { name: 'Shell' }).click();
    await page.waitForURL(/#\/sessions\//);
    const url = page.url();
    const p = await context.newPage();
    const line = await controlledLine(p);
    await p.goto(url);
    await p.locator('#conn-state', { hasText: 'live' }).waitFor();
    await line.drop();
    await p.locator('#conn-state', { hasText: 'reconnecting' }).waitFor();
    await typeLine(p, 'echo too-late');
    await p.locator('#input-pending', { hasText: 'echo too-late' }).waitFor();
    page.once('dialog', (d) => d.accept());
    await page.locator('#end-session').click();
    await page.locator('#conn-state', { hasText: 'ended' }).waitFor();
    line.restore();
    await p.getByRole('button', { name: 'Retry now' }).click().catch(() => {});
    await p.locator('#input-undelivered', { hasText: /session ended.*echo too-late⏎/ }).waitFor({ timeout: 20_000 });
    await p.locator('#conn-state', { hasText: 'ended' }).waitFor();
    await shoot(p, 'input-undelivered');
    await p.close();
    await page.goto(sessionUrl);
    await page.locator('#conn-state', { hasText: 'live' }).waitFor();
  });

  it('resizes the PTY with the window', async () => {
    await page.setViewportSize({ width: 700, height: 500 });
    await page.waitForTimeout(300);
    const size = await page.evaluate(() => {
      const el = document.querySelector('.term-host .xterm-rows');
      return el ? el.children.length : 0;
    });
    await typeLine(page, 'stty size');
    await waitForRow(page, new RegExp(`^${size} \\d+$`));
    await page.setViewportSize(DESKTOP);
    // Screenshots resize the terminal too, which makes the shell redraw at other widths; they
    // come after the replay checks for that reason.
    await shoot(page, 'terminal');
  });

  it('lists the session with its state on the project page, live', async () => {
    await page.goto(`${daemon.url}/#/`);
    await page.locator('.card.project').first().waitFor();
    await shoot(page, 'projects');
    await page.getByRole('link', { name: 'demo' }).click();
    const running = page.locator('.session[data-state="running"]');
    await running.first().waitFor();
    await shoot(page, 'project');
    // End it from the terminal page; the project page, open in another tab, updates by itself.
    const other = await context.newPage();
    await other.goto(sessionUrl);
    other.once('dialog', (d) => d.accept());
    await other.locator('#end-session').click();
    await page.locator('.session[data-state="exited"]').first().waitFor({ timeout: 15_000 });
    await other.close();
  });

  it('shows the status page with where the data lives', async () => {
    await page.goto(`${daemon.url}/#/status`);
    await page.getByRole('heading', { name: "Where's my data?" }).waitFor();
    const paths = await page.locator('#paths').innerText();
    assert.ok(paths.includes(daemon.tmp), `paths name the temp HOME:\n${paths}`);
    assert.match(await page.locator('main').innerText(), /loopback/);
    await shoot(page, 'status');
  });

  it('reads the audit log with filters and paging', async () => {
    await page.goto(`${daemon.url}/#/audit?type=session.`);
    await page.locator('ol.audit[data-query="type=session."]').waitFor();
    const types = await page.locator('.event').evaluateAll((es) => es.map((e) => e.getAttribute('data-type')));
    assert.ok(types.length > 0 && types.every((t) => t.startsWith('session.')), `only session.* events: ${types}`);
    await shoot(page, 'audit');

    await page.goto(`${daemon.url}/#/audit?limit=3`);
    const ids = () => page.locator('.event .event-head .muted:first-child').evaluateAll((es) => es.map((e) => Number(e.textContent.slice(1))));
    await page.locator('ol.audit[data-query="limit=3"]').waitFor();
    const firstPage = await ids();
    assert.equal(firstPage.length, 3);
    await page.locator('#audit-older').click();
    await page.locator(`ol.audit[data-query="limit=3&before=${Math.min(...firstPage)}"]`).waitFor();
    const secondPage = await ids();
    assert.equal(secondPage.length, 3);
    assert.ok(Math.max(...secondPage) < Math.min(...firstPage), `older page ${secondPage} is below ${firstPage}`);
    await page.getByRole('link', { name: /Newest/ }).click();
    await page.waitForURL((u) => !u.hash.includes('before='));
  });

  it("shows a filtered cage's network and its live egress log, refusals first", async () => {
    const dir = daemon.project(
      'egress-ui',
      'version: 1\nproject: egress-ui\nprimary:\n  command: [sh]\n  cage:\n    network: {allow: ["*.example.com"], deny: [evil.example.com]}\n',
    );
    const script =
      'curl -s -o /dev/null --noproxy "" -x "$HTTP_PROXY" http://evil.example.com/; ' +
      'curl -s -o /dev/null --noproxy "" -x "$HTTP_PROXY" http://example.org/; sleep 60';
    const id = await page.evaluate(
      async ([path, script]) => {
        const key = localStorage.getItem('kaged-page-key');
        const me = await (await fetch('/api/v1/me', { credentials: 'same-origin', headers: { 'X-Kaged-Page': key } })).json();
        const headers = { 'Content-Type': 'application/json', 'X-Kaged-CSRF': me.csrf_token, 'X-Kaged-Page': key };
        await fetch('/api/v1/projects', { method: 'POST', credentials: 'same-origin', headers, body: JSON.stringify({ path }) });
        const r = await fetch('/api/v1/projects/egress-ui/sessions', {
          method: 'POST',
          credentials: 'same-origin',
          headers,
          body: JSON.stringify({ argv: ['bash', '--norc', '-c', script] }),
        });
        return (await r.json()).id;
      },
      [dir, script],
    );
    await page.evaluate((id) => (location.hash = `#/sessions/${id}`), id);
    await page.locator('#network-filtered').waitFor();
    const log = page.locator('#egress-log');
    await page.waitForFunction(() => (document.querySelector('#egress-log')?.textContent ?? '').includes('example.org'), null, { timeout: 20_000 });
    const text = await log.innerText();
    assert.match(text, /0 allowed, 2 denied/);
    assert.match(text, /denied HTTP evil\.example\.com:80 — deny evil\.example\.com/);
    assert.match(text, /denied HTTP example\.org:80 — no allow entry matches/);
    await shoot(page, 'egress-log');
  });

  it("reviews a run's worktree, shows the paths a refused merge names, cleans up into a snapshot and restores it", async () => {
    const dir = daemon.project(
      'wt-ui',
      'version: 1\nproject: wt-ui\nprimary:\n  command: [sh, -c, "exit 0"]\n  agents:\n    fixer:\n      command: [sh, fix.sh]\n      workspace: worktree\n',
    );
    writeFileSync(
      join(dir, 'fix.sh'),
      "set -e\nprintf 'fixed\\n' > fix.txt\ngit add fix.txt\ngit -c user.name=agent -c user.email=a@b commit -qm 'Fix the thing'\nprintf 'more\\n' >> README.md\nprintf 'scratch\\n' > notes.txt\n",
    );
    writeFileSync(join(dir, 'README.md'), 'hello\n');
    const env = { ...daemon.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
    for (const args of [['init', '-q', '-b', 'main'], ['add', '-A'], ['commit', '-qm', 'init']]) execFileSync('git', ['-C', dir, ...args], { env });
    await page.goto(`${daemon.url}/#/projects`);
    await page.evaluate(async (path) => {
      const key = localStorage.getItem('kaged-page-key');
      const me = await (await fetch('/api/v1/me', { credentials: 'same-origin', headers: { 'X-Kaged-Page': key } })).json();
      const headers = { 'Content-Type': 'application/json', 'X-Kaged-CSRF': me.csrf_token, 'X-Kaged-Page': key };
      await fetch('/api/v1/projects', { method: 'POST', credentials: 'same-origin', headers, body: JSON.stringify({ path }) });
    }, dir);
    await page.evaluate(() => (location.hash = '#/projects/wt-ui'));
    await page.getByRole('button', { name: 'Agent: primary.fixer' }).click();
    await page.waitForURL(/#\/sessions\//);
    await page.getByRole('link', { name: 'worktree: review' }).click();
    await page.getByText('Fix the thing').waitFor();
    const files = await page.locator('.files li').allInnerTexts();
    assert.deepEqual(files.map((f) => f.replace(/\s+/g, ' ').trim()), ['modified README.md not committed', 'added fix.txt', 'added notes.txt untracked']);
    await shoot(page, 'worktree-review');
    // A dirty main checkout in a path the merge touches: refused, naming the path.
    writeFileSync(join(dir, 'fix.txt'), 'mine\n');
    await page.getByRole('button', { name: /Fast-forward/ }).click();
    await page.getByRole('list', { name: 'Paths in the way' }).getByText('fix.txt').waitFor();
    await page.getByRole('button', { name: 'Clean up' }).click();
    assert.match(await page.getByRole('status').innerText(), /3 unsaved item\(s\) are in snapshot refs\/kaged\/snapshots\//);
    await page.getByRole('button', { name: 'Restore' }).click();
    await page.getByRole('heading', { name: /restored-1/ }).waitFor();
    await page.getByText('notes.txt').first().waitFor();
    await shoot(page, 'worktree-restored');
  });

  it("lists what an agent's adapter set and, opened, what its CLI cannot honour", async () => {
    const dir = daemon.project(
      'agent-ui',
      'version: 1\nproject: agent-ui\nprimary:\n  model: smart\n  command: [tools/claude]\n  tools: [shell, "agent:helper"]\n  cage:\n    network: {allow: []}\n  agents:\n    helper:\n      command: [sh]\n',
    );
    // A stand-in for Claude Code: the adapter recognises the program by its name.
    mkdirSync(join(dir, 'tools'));
    writeFileSync(join(dir, 'tools', 'claude'), '#!/bin/sh\necho "stand-in claude $*"; sleep 60\n', { mode: 0o755 });
    const id = await page.evaluate(async (path) => {
      const key = localStorage.getItem('kaged-page-key');
      const me = await (await fetch('/api/v1/me', { credentials: 'same-origin', headers: { 'X-Kaged-Page': key } })).json();
      const headers = { 'Content-Type': 'application/json', 'X-Kaged-CSRF': me.csrf_token, 'X-Kaged-Page': key };
      const p = await fetch('/api/v1/projects', { method: 'POST', credentials: 'same-origin', headers, body: JSON.stringify({ path }) });
      if (!p.ok) throw new Error(`loading the project: ${await p.text()}`);
      const r = await fetch('/api/v1/projects/agent-ui/sessions', { method: 'POST', credentials: 'same-origin', headers, body: JSON.stringify({ agent: 'primary' }) });
      if (!r.ok) throw new Error(`starting the agent: ${await r.text()}`);
      return (await r.json()).id;
    }, dir);
    await page.evaluate((id) => (location.hash = `#/sessions/${id}`), id);
    const panel = page.locator('#agent-adapter');
    await panel.waitFor();
    assert.equal(await panel.getAttribute('open'), '', 'open by itself: something is not honoured');
    const text = await panel.innerText();
    assert.match(text, /Agent: claude/);
    assert.match(text, /tools: agent:helper: Claude Code's subagents run in its own process/);
    assert.match(text, /model: smart: local\.toml defines no alias `smart`/);
    assert.match(text, /env DISABLE_TELEMETRY=1 — no telemetry/);
    assert.match(text, /flag --tools=Bash — tools: only the declared ones exist/);
    await shoot(page, 'agent-adapter');
  });

  it('asked no host but the daemon', () => {
    assert.deepEqual(foreign, [], `only ${JSON.stringify(daemon.url)} was asked`);
  });
});

describe('insecure mode (ADR-0007 warning UX)', () => {
  let daemon, browser;
  const BANNER = 'INSECURE MODE — AUTH BYPASSED';

  before(async () => {
    daemon = await Daemon.start(['--insecure', '--no-sandbox']);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await daemon?.stop();
  });

  it('shows the banner on every page, without a close button, across navigation and reloads', async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const foreign = await watch(context, daemon.url);
    await context.addInitScript(() => localStorage.setItem('kaged.insecureAck', (() => {
      const d = new Date();
      const p = (n) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
    })()));
    const page = await context.newPage();
    await page.goto(`${daemon.url}/`);
    const dir = daemon.project('insecure-demo');
    await page.getByLabel(/Absolute path/).fill(dir);
    await page.getByRole('button', { name: 'Load' }).click();
    await page.getByRole('heading', { name: 'insecure-demo' }).waitFor();
    const projectHash = new URL(page.url()).hash;
    await page.getByRole('button', { name: 'Shell' }).click();
    await page.waitForURL(/#\/sessions\//);
    const sessionHash = new URL(page.url()).hash;
    for (const hash of ['#/', projectHash, sessionHash, '#/status', '#/audit', '#/nowhere']) {
      for (const how of ['navigate', 'reload']) {
        if (how === 'navigate') await page.evaluate((h) => (location.hash = h), hash);
        else await page.reload();
        const banner = page.locator('#insecure-banner');
        await banner.waitFor();
        assert.equal((await banner.innerText()).trim(), BANNER, `banner text on ${hash} after ${how}`);
        assert.equal(await banner.locator('button, [role=button], a').count(), 0, 'the banner has no close control');
        const color = await banner.evaluate((el) => getComputedStyle(el).backgroundColor);
        assert.match(color, /rgb\((19[0-9]|2\d\d), \d{1,2}, (9\d|1[0-4]\d)\)/, `banner is magenta (${color})`);
        assert.equal((await page.locator('#nosandbox-banner').innerText()).trim(), 'NO SANDBOX — SESSIONS ARE NOT CAGED');
        assert.equal(await page.locator('#insecure-splash').count(), 0, 'acknowledged today: no splash');
      }
    }
    await page.evaluate((h) => (location.hash = h), sessionHash);
    await page.locator('#conn-state', { hasText: 'live' }).waitFor();
    assert.deepEqual(await page.evaluate(() => window.__csp), [], 'no CSP violations on any screen');
    assert.deepEqual(foreign, [], 'no request to another host');
    await shoot(page, 'insecure-terminal');
    await context.close();
  });

  it('shows the splash on the first session of each day; the banner stays after', async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await page.goto(`${daemon.url}/`);
    const splash = page.locator('#insecure-splash');
    await splash.waitFor();
    assert.equal(await splash.evaluate((d) => d.open && d.matches(':modal')), true, 'a real modal dialog');
    await shoot(page, 'insecure-splash');
    await page.keyboard.press('Escape');
    assert.equal(await splash.isVisible(), true, 'Escape does not dismiss it');
    await page.getByRole('button', { name: 'I understand' }).click();
    await splash.waitFor({ state: 'detached' });
    assert.equal(await page.locator('#insecure-banner').isVisible(), true, 'banner stays after the click');

    await page.reload();
    await page.locator('#insecure-banner').waitFor();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    assert.equal(await splash.count(), 0, 'same day: no splash again');

    // Yesterday's acknowledgement does not count today.
    await page.evaluate(() => {
      const d = new Date(Date.now() - 86_400_000);
      const p = (n) => String(n).padStart(2, '0');
      localStorage.setItem('kaged.insecureAck', `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`);
    });
    await page.reload();
    await splash.waitFor();
    await page.getByRole('button', { name: 'I understand' }).click();
    await splash.waitFor({ state: 'detached' });

    // And tomorrow (a clock moved forward a day) asks again.
    const tomorrow = await context.newPage();
    await tomorrow.addInitScript(() => {
      const Real = Date;
      const shift = 86_400_000;
      class Shifted extends Real {
        constructor(...a) {
          super(...(a.length ? a : [Real.now() + shift]));
        }
        static now() {
          return Real.now() + shift;
        }
      }
      globalThis.Date = Shifted;
    });
    await tomorrow.goto(`${daemon.url}/`);
    await tomorrow.locator('#insecure-splash').waitFor();
    await context.close();
  });
});
