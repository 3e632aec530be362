/// <reference types="vitest/config" />
import { writeFileSync } from 'node:fs'
import { fileURLToPath, URL } from 'node:url'
import { defineConfig, type Plugin } from 'vite'
import vue from '@vitejs/plugin-vue'

const dist = fileURLToPath(new URL('./dist', import.meta.url))

/** main.go embeds frontend/dist, which must exist in a fresh clone: keep its placeholder. */
function keepGitkeep(): Plugin {
  return {
    name: 'mooxsync-keep-gitkeep',
    apply: 'build',
    closeBundle() {
      writeFileSync(`${dist}/.gitkeep`, '')
    },
  }
}

// The Wails dev server proxies to this one (frontend:dev:serverUrl "auto"); `vite build`
// writes dist/, which main.go embeds.
export default defineConfig(async ({ mode }) => ({
  plugins: [vue(), keepGitkeep(), ...(mode === 'mock' ? [(await import('./dev/mock-backend.ts')).mockBackend()] : [])],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  define: {
    __VUE_I18N_FULL_INSTALL__: false,
    __VUE_I18N_LEGACY_API__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
  test: {
    environment: 'happy-dom',
    include: ['tests/**/*.test.ts'],
    restoreMocks: true,
    testTimeout: 20_000,
  },
}))
