import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { setTransport } from '@/api/transport'
import type { Settings } from '@/api/types'
import { useActivityStore } from '@/stores/activity'
import { useSettingsStore } from '@/stores/settings'
import { goError, installFakeTransport, type FakeTransport } from '../fake-transport'

let t: FakeTransport
beforeEach(() => {
  setActivePinia(createPinia())
  t = installFakeTransport()
  localStorage.clear()
})
afterEach(() => setTransport(null))

const settings: Settings = { log_level: 'info', theme: 'dark', language: 'de', has_sync_token: false, secrets_backend: 'keyring', secrets_warning: null }

describe('activity store', () => {
  it('lists newest first with the limit', async () => {
    t.on('ActivityService.List', () => [
      { id: 1, at: '2024-01-01T00:00:00Z', kind: 'push', platform_id: 1, platform_name: 'a', result: 'ok', code: null, message: null },
      { id: 2, at: '2024-03-01T00:00:00Z', kind: 'agent_error', platform_id: 1, platform_name: 'a', result: 'failed', code: 'x', message: 'y' },
    ])
    const s = useActivityStore()
    await s.load(50)
    expect(s.entries.map((e) => e.id)).toEqual([2, 1])
    expect(t.callsOf('ActivityService.List')).toEqual([[50]])
  })

  it('keeps the error of a failed load', async () => {
    t.on('ActivityService.List', () => {
      throw 'disk I/O error'
    })
    const s = useActivityStore()
    await expect(s.load()).rejects.toMatchObject({ code: 'internal', message: 'disk I/O error' })
    expect(s.error?.code).toBe('internal')
  })
})

describe('settings store', () => {
  it('loads the settings and caches theme and language for the next start', async () => {
    t.on('SettingsService.Get', () => settings)
    const s = useSettingsStore()
    await s.load()
    expect(s.theme).toBe('dark')
    expect(s.language).toBe('de')
    expect(localStorage.getItem('mooxsync.theme')).toBe('dark')
    setActivePinia(createPinia())
    expect(useSettingsStore().theme).toBe('dark')
  })

  it('saves a change merged into the current settings', async () => {
    t.on('SettingsService.Get', () => settings).on('SettingsService.Save', (x: Settings) => x)
    const s = useSettingsStore()
    await s.load()
    await s.save({ theme: 'light' })
    expect(t.callsOf('SettingsService.Save')).toEqual([[{ ...settings, theme: 'light' }]])
    expect(s.theme).toBe('light')
  })

  it('keeps the previous values when saving fails', async () => {
    t.on('SettingsService.Get', () => settings).on('SettingsService.Save', () => {
      throw goError('validation', 'unknown log level', 'log_level')
    })
    const s = useSettingsStore()
    await s.load()
    await expect(s.save({ language: 'en' })).rejects.toMatchObject({ field: 'log_level' })
    expect(s.language).toBe('de')
    expect(s.saving).toBe(false)
  })

  it('generates the sync token and reloads', async () => {
    let has = false
    t.on('SettingsService.Get', () => ({ ...settings, has_sync_token: has })).on('SettingsService.GenerateSyncToken', () => {
      has = true
    })
    const s = useSettingsStore()
    await s.load()
    await s.generateSyncToken()
    expect(s.settings?.has_sync_token).toBe(true)
  })
})
