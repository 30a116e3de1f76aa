import { fileURLToPath } from 'node:url';
import { playwright } from '@vitest/browser-playwright';
import { defineConfig } from 'vitest/config';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// Chromium from Debian (never a downloaded browser), SwiftShader as its WebGPU adapter.
const chromium = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const chromiumArgs = [
  '--no-sandbox',
  '--disable-dev-shm-usage',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--allow-loopback-in-peer-connection',
];

// Cross-origin isolation: onnxruntime-web's threaded wasm needs SharedArrayBuffer.
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

// `vite build` (npm run build) builds the pages the hub serves: src/ui/ → dist/, so the volunteer
// page is at /volunteer/, the researcher console at /console/, the widget's element at
// /widget/hearth-widget.js (a name that never changes: other sites link to it) and its frame at
// /widget/frame.html. Tests and the dev server keep the repository root as their root.
export default defineConfig(({ command }) => ({
  ...(command === 'build'
    ? {
        root: here('src/ui'),
        base: '/',
        build: {
          outDir: here('dist'),
          emptyOutDir: true,
          target: 'es2022',
          rollupOptions: {
            input: {
              index: here('src/ui/index.html'),
              volunteer: here('src/ui/volunteer/index.html'),
              console: here('src/ui/console/index.html'),
              // <hearth-widget>: the element other sites load by a fixed URL, and its frame.
              'hearth-widget': here('src/ui/widget/hearth-widget.ts'),
              'widget-frame': here('src/ui/widget/frame.html'),
            },
            output: {
              entryFileNames: (chunk: { name: string }) =>
                chunk.name === 'hearth-widget' ? 'widget/hearth-widget.js' : 'assets/[name]-[hash].js',
            },
          },
        },
      }
    : {}),
  server: { host: '127.0.0.1', headers: isolation },
  preview: { host: '127.0.0.1', headers: isolation },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  worker: { format: 'es' },
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['test/**/*.node.test.ts'],
          environment: 'node',
          pool: 'forks',
          // One throwaway PostgreSQL cluster per run (the hubs-on-one-database tests).
          globalSetup: ['test/setup/postgres.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: ['test/**/*.browser.test.ts'],
          browser: {
            enabled: true,
            headless: true,
            provider: playwright({ launchOptions: { executablePath: chromium, args: chromiumArgs } }),
            instances: [{ browser: 'chromium' }],
            screenshotFailures: false,
          },
        },
      },
    ],
  },
}));
