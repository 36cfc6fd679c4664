// Starts the real `kaged` binary for the browser tests, in a throw-away HOME with its own
// XDG_RUNTIME_DIR, and reads the listening address and the one-time launch URL from stderr.

import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');
export const KAGED_BIN = resolve(process.env.KAGED_BIN ?? join(repoRoot, 'target', 'debug', 'kaged'));
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const SHOTS = join(repoRoot, 'target', 'screenshots');

export class Daemon {
  /** @param {string[]} args extra `kaged start` flags */
  static async start(args = [], { timeoutMs = 30_000 } = {}) {
    if (!existsSync(KAGED_BIN)) throw new Error(`kaged binary not found at ${KAGED_BIN}; run \`cargo build -p kaged\` or set KAGED_BIN`);
    const tmp = mkdtempSync(join(tmpdir(), 'kaged-e2e-'));
    const rt = join(tmp, 'rt');
    mkdirSync(rt, { mode: 0o700 });
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: tmp,
      XDG_RUNTIME_DIR: rt,
      KAGED_MODE: 'user',
      // The sessions a test starts end with its daemon; nothing is left to a holder.
      KAGED_SESSIONS_ON_STOP: 'end',
      SHELL: '/bin/bash',
      TERM: 'xterm-256color',
      LANG: 'C.UTF-8',
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
    };
    const child = spawn(KAGED_BIN, ['start', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const d = new Daemon(tmp, env, child);
    await d.#ready(timeoutMs);
    if (process.env.KAGED_E2E_PREVIEW === '1') await d.#preview();
    return d;
  }

  constructor(tmp, env, child) {
    this.tmp = tmp;
    this.env = env;
    this.child = child;
    this.log = '';
    this.url = '';
    /** Set only in preview mode: the daemon's own URL (then `url` is the preview's). */
    this.daemonUrl = '';
    this.launchUrl = '';
    child.stdout.on('data', (b) => (this.log += b));
    child.stderr.on('data', (b) => (this.log += b));
  }

  #ready(timeoutMs) {
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`kaged did not print its URL within ${timeoutMs} ms:\n${this.log}`)), timeoutMs);
      let done = false;
      const check = () => {
        if (done) return;
        const l = this.log.match(/listening on (http:\/\/\S+)/);
        const o = this.log.match(/open:\s+(http:\/\/\S+)/);
        const insecure = /auth:\s+insecure/.test(this.log);
        if (l && (o || insecure) && /auth:/.test(this.log)) {
          done = true;
          clearTimeout(timer);
          this.url = l[1].replace(/\/$/, '');
          this.launchUrl = o ? o[1] : '';
          ok();
        }
      };
      this.child.stderr.on('data', check);
      this.child.stdout.on('data', check);
      this.child.on('exit', (code) => {
        if (done) return;
        clearTimeout(timer);
        fail(new Error(`kaged exited with ${code} before it was ready:\n${this.log}`));
      });
    });
  }

  /**
   * KAGED_E2E_PREVIEW=1: serve web/dist with `vite preview`, proxying the API to the daemon, for a
   * daemon built without the embedded UI. Only for working on the UI: `/` is then not behind auth.
   */
  async #preview() {
    const vite = join(here, '..', 'node_modules', '.bin', 'vite');
    this.preview = spawn(vite, ['preview', '--host', '127.0.0.1', '--port', '0'], {
      cwd: join(here, '..'),
      env: { ...process.env, KAGED_URL: this.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const url = await new Promise((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`vite preview did not start:\n${out}`)), 20_000);
      const on = (b) => {
        out += b;
        const m = out.replace(/\x1b\[[0-9;]*m/g, '').match(/Local:\s+(http:\/\/\S+?)\/?\s/);
        if (m) (clearTimeout(t), ok(m[1]));
      };
      this.preview.stdout.on('data', on);
      this.preview.stderr.on('data', on);
    });
    this.daemonUrl = this.url;
    this.launchUrl = this.launchUrl.replace(this.url, url);
    this.url = url;
  }

  /** A fresh one-time launch URL, as an operator gets it: `kaged auth open --no-browser`. */
  async authOpen() {
    const { stdout } = await promisify(execFile)(KAGED_BIN, ['auth', 'open', '--no-browser'], { env: this.env });
    const m = stdout.match(/http:\/\/\S+\/launch\?token=\S+/);
    if (!m) throw new Error(`no launch URL in \`kaged auth open\` output: ${stdout}`);
    return this.daemonUrl ? m[0].replace(this.daemonUrl, this.url) : m[0];
  }

  /** A project directory with a minimal `.kaged/project.yaml`. */
  project(name, yaml = `version: 1\nproject: ${name}\n`) {
    const dir = join(this.tmp, 'projects', name);
    mkdirSync(join(dir, '.kaged'), { recursive: true });
    writeFileSync(join(dir, '.kaged', 'project.yaml'), yaml);
    return dir;
  }

  async stop() {
    this.preview?.kill('SIGTERM');
    if (this.child.exitCode === null) {
      const gone = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** Saves `target/screenshots/<name>-<desktop|phone>.png` at both sizes. */
export async function shoot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  const before = page.viewportSize();
  for (const [label, size] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(size);
    await page.waitForTimeout(250);
    await page.screenshot({ path: join(SHOTS, `${name}-${label}.png`) });
  }
  if (before) await page.setViewportSize(before);
}
