import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { AppError } from '@/api/call'
import { setTransport } from '@/api/transport'
import { usePlatformStore } from '@/stores/platforms'
import { emptyPlatformInput } from '@/validation/platform'
import { goError, installFakeTransport, type FakeTransport } from '../fake-transport'
import { makePlatform } from '../fixtures'

let t: FakeTransport
beforeEach(() => {
  setActivePinia(createPinia())
  t = installFakeTransport()
})
afterEach(() => setTransport(null))

describe('platform store', () => {
  it('loads and sorts by order, then name', async () => {
    t.on('PlatformService.List', () => [makePlatform({ id: 1, name: 'b', order: 2 }), makePlatform({ id: 2, name: 'z', order: 1 }), makePlatform({ id: 3, name: 'a', order: 2 })])
    const s = usePlatformStore()
    await s.load()
    expect(s.platforms.map((p) => p.id)).toEqual([2, 3, 1])
    expect(s.loaded).toBe(true)
    expect(s.byId.get(3)?.name).toBe('a')
  })

  it('keeps a failed load as a typed error and rethrows it', async () => {
    t.on('PlatformService.List', () => {
      throw goError('internal', 'catalog is locked')
    })
    const s = usePlatformStore()
    await expect(s.load()).rejects.toBeInstanceOf(AppError)
    expect(s.error).toMatchObject({ code: 'internal', message: 'catalog is locked' })
    expect(s.loading).toBe(false)
  })

  it('saves a new platform and adds it to the list', async () => {
    t.on('PlatformService.Save', (p) => makePlatform({ ...p, id: 9 }))
    const s = usePlatformStore()
    const saved = await s.save({ ...emptyPlatformInput(), name: 'New', domain: 'new.example.com', agent_url: 'https://new.example.com' })
    expect(saved.id).toBe(9)
    expect(s.platforms.map((p) => p.id)).toEqual([9])
    expect(t.callsOf('PlatformService.Save')[0][0]).toMatchObject({ id: 0, name: 'New' })
  })

  it('replaces an edited platform in place', async () => {
    t.on('PlatformService.List', () => [makePlatform({ id: 1, name: 'Old' })]).on('PlatformService.Save', (p) => makePlatform({ ...p }))
    const s = usePlatformStore()
    await s.load()
    await s.save({ ...emptyPlatformInput(), id: 1, name: 'Renamed', domain: 'p1.example.com', agent_url: 'https://p1.example.com' })
    expect(s.platforms).toHaveLength(1)
    expect(s.platforms[0].name).toBe('Renamed')
  })

  it('removes a platform only when the Go side agrees', async () => {
    t.on('PlatformService.List', () => [makePlatform({ id: 1 }), makePlatform({ id: 2 })])
      .on('PlatformService.Delete', (id: number) => {
        if (id === 1) throw goError('conflict', 'the platform is used by sync 4')
      })
    const s = usePlatformStore()
    await s.load()
    await expect(s.remove(1)).rejects.toMatchObject({ code: 'conflict', message: 'the platform is used by sync 4' })
    expect(s.platforms.map((p) => p.id)).toEqual([1, 2])
    await s.remove(2)
    expect(s.platforms.map((p) => p.id)).toEqual([1])
  })

  it('pins an accepted fingerprint locally', async () => {
    t.on('PlatformService.List', () => [makePlatform({ id: 1, tls_fingerprint: 'sha256:old', pending_fingerprint: 'sha256:new' })]).on(
      'PlatformService.AcceptFingerprint',
      () => undefined,
    )
    const s = usePlatformStore()
    await s.load()
    await s.acceptFingerprint(1, 'sha256:new')
    expect(t.callsOf('PlatformService.AcceptFingerprint')).toEqual([[1, 'sha256:new']])
    expect(s.byId.get(1)).toMatchObject({ tls_fingerprint: 'sha256:new', pending_fingerprint: null })
  })

  it('passes token and lookup calls through', async () => {
    t.on('PlatformService.GenerateToken', () => 'tok')
      .on('PlatformService.SetToken', () => undefined)
      .on('PlatformService.LookupIP', () => '192.0.2.1')
      .on('PlatformService.Probe', () => ({ fingerprint: 'sha256:f', version: '1', enrolled: false, platform_id: null }))
    const s = usePlatformStore()
    expect(await s.generateToken()).toBe('tok')
    await s.setToken(4, 'tok')
    expect(await s.lookupIP('a.example.com')).toBe('192.0.2.1')
    expect((await s.probe('https://a.example.com')).fingerprint).toBe('sha256:f')
    expect(t.callsOf('PlatformService.SetToken')).toEqual([[4, 'tok']])
  })
})
