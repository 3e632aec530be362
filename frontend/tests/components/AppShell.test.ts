import { afterEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { createPinia } from 'pinia'
import App from '@/App.vue'
import { setTransport } from '@/api/transport'
import { createAppI18n } from '@/i18n'
import { createAppRouter } from '@/router'
import { useFleetStore } from '@/stores/fleet'
import { goError, installFakeTransport } from '../fake-transport'
import { makePlatform } from '../fixtures'
import { byTestId, settle } from '../mount'

afterEach(() => {
  setTransport(null)
  document.body.innerHTML = ''
})

async function mountApp() {
  const pinia = createPinia()
  const router = createAppRouter()
  const w = mount(App, { global: { plugins: [pinia, createAppI18n('en'), router] }, attachTo: document.body })
  await router.push('/platforms')
  await settle(10)
  return { w, router, pinia }
}

describe('the app shell', () => {
  it('navigates with the left nav and shows every failed call as a notification with its code', async () => {
    installFakeTransport()
      .on('SettingsService.Get', () => ({ log_level: 'info', theme: 'light', language: 'en', has_sync_token: true, secrets_backend: 'keyring', secrets_warning: null }))
      .on('PlatformService.List', () => [makePlatform({ id: 1, name: 'Shop' })])
      .on('FleetService.Overview', () => {
        throw goError('internal', 'catalog is locked')
      })
    const { w, router } = await mountApp()
    for (const name of ['dashboard', 'platforms', 'syncs', 'relations', 'activity', 'settings']) {
      expect(w.find(`[data-testid="nav-${name}"]`).exists()).toBe(true)
    }
    expect(byTestId('page-platforms')).not.toBeNull()
    expect(byTestId('platform-row-1')?.textContent).toContain('Shop')

    const note = byTestId('notification-error')
    expect(note?.dataset.code).toBe('internal')
    expect(note?.textContent).toBe('catalog is locked')

    await router.push('/dashboard')
    await settle(10)
    expect(byTestId('page-dashboard')).not.toBeNull()
    expect(byTestId('dashboard-error')?.textContent).toContain('catalog is locked')
    useFleetStore().stopWatching()
    w.unmount()
  })
})
