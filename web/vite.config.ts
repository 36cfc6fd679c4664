// Build config for the UI that `kaged` embeds. Output: dist/index.html plus hashed files under
// dist/assets/, which is exactly what the daemon serves at `/` and `/assets/*`.
import { defineConfig } from 'vite';

const daemon = process.env.KAGED_URL ?? 'http://127.0.0.1:7777';

/**
 * Dev only (`npm run dev`, `npm run preview`): forward the API and the launch URL to a running
 * daemon (KAGED_URL), rewriting Host and Origin so its same-origin checks pass.
 */
const proxy = Object.fromEntries(
  ['/api', '/launch'].map((p) => [
    p,
    {
      target: daemon,
      ws: true,
      changeOrigin: true,
      configure: (proxy: any) => {
        proxy.on('proxyReq', (req: any) => req.getHeader('origin') && req.setHeader('origin', daemon));
        proxy.on('proxyReqWs', (req: any) => req.setHeader('origin', daemon));
      },
    },
  ]),
);

/** The daemon's headers, so the preview shows what the real thing allows. */
const headers = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

export default defineConfig({
  base: '/',
  // public/ holds only what the daemon serves by name: the service worker and manifest at the
  // root, and the app icons under assets/.
  publicDir: 'public',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    target: 'es2022',
    // Everything is a file: the CSP has no `data:` for scripts or fonts, and inlining would
    // turn assets into data URLs.
    assetsInlineLimit: 0,
    // The module preload polyfill injects an inline script, which the CSP forbids.
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: { proxy },
  preview: { proxy, headers },
});
