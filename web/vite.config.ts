// Build config for the UI that `kaged` embeds. Output: dist/index.html plus hashed files under
// dist/assets/, which is exactly what the daemon serves at `/` and `/assets/*`.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  // Nothing from public/ (no favicon request to a path the daemon does not serve).
  publicDir: false,
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
  // Dev only (`npm run dev`): forward the API and the launch URL to a running daemon
  // (KAGED_URL, default http://127.0.0.1:7777), rewriting Origin so its same-origin check passes.
  server: {
    proxy: Object.fromEntries(
      ['/api', '/launch'].map((p) => [
        p,
        {
          target: process.env.KAGED_URL ?? 'http://127.0.0.1:7777',
          ws: true,
          changeOrigin: true,
          configure: (proxy: any) => {
            const origin = process.env.KAGED_URL ?? 'http://127.0.0.1:7777';
            proxy.on('proxyReq', (req: any) => req.getHeader('origin') && req.setHeader('origin', origin));
            proxy.on('proxyReqWs', (req: any) => req.setHeader('origin', origin));
          },
        },
      ]),
    ),
  },
});
