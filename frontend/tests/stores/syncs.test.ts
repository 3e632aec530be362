import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { setTransport } from '@/api/transport'
import { useSyncStore } from '@/stores/syncs'
import { emptySyncInput } from '@/validation/sync'
import { goError, installFakeTransport, type FakeTransport } from '../fake-transport'
import { makeSync } from '../fixtures'

let t: FakeTransport
beforeEach(() => {
  setActivePinia(createPinia())
  t = installFakeTransport()
})
afterEach(() => setTransport(null))

const users = { name: 'users', columns: [{ name: 'uuid', type: 'char(36)', nullable: false, primary_key: false }], unique: [['uuid']] }

describe('sync store', () => {
  it('lists with the platform filter (0 = any)', async () => {
    t.on('SyncService.List', () => [makeSync()])
    const s = useSyncStore()
    await s.load()
    await s.load({ source: 3 })
    await s.load({ target: 5 })
    expect(t.callsOf('SyncService.List')).toEqual([
      [0, 0],
      [3, 0],
      [3, 5],
    ])
    expect(s.syncs).toHaveLength(1)
  })

  it('adds a saved sync, and drops it from the list when it no longer matches the filter', async () => {
    t.on('SyncService.List', () => [makeSync({ id: 1, source_platform_id: 1 })]).on('SyncService.Save', (x) => makeSync({ ...x, id: x.id || 2 }))
    const s = useSyncStore()
    await s.load({ source: 1 })
    await s.save({ ...emptySyncInput(), source_platform_id: 1, source_model: 'a', target_platform_id: 2, target_model: 'b' })
    expect(s.syncs.map((x) => x.id)).toEqual([1, 2])
    await s.save({ ...emptySyncInput(), id: 1, source_platform_id: 7, source_model: 'a', target_platform_id: 2, target_model: 'b' })
    expect(s.syncs.map((x) => x.id)).toEqual([2])
  })

  it('surfaces a validation error with its field', async () => {
    t.on('SyncService.Save', () => {
      throw goError('validation', 'interval must be at least 1', 'interval')
    })
    await expect(useSyncStore().save(emptySyncInput())).rejects.toMatchObject({ code: 'validation', field: 'interval' })
  })

  it('lists models live per platform, with loading state and a cache', async () => {
    let calls = 0
    t.on('SyncService.Models', () => {
      calls++
      return [users]
    })
    const s = useSyncStore()
    const p = s.loadModels(1)
    expect(s.models[1].loading).toBe(true)
    await p
    expect(s.models[1]).toMatchObject({ loading: false, loaded: true, error: null })
    expect(s.modelColumns(1, 'users')).toEqual(['uuid'])
    expect(s.modelColumns(1, 'nope')).toBeNull()
    await s.loadModels(1)
    expect(calls).toBe(1)
    await s.loadModels(1, true)
    expect(calls).toBe(2)
  })

  it('keeps a model listing error per platform', async () => {
    t.on('SyncService.Models', () => {
      throw goError('unreachable', 'agent did not answer')
    })
    const s = useSyncStore()
    await expect(s.loadModels(2)).rejects.toMatchObject({ code: 'unreachable' })
    expect(s.models[2]).toMatchObject({ loading: false, loaded: false, error: { code: 'unreachable', message: 'agent did not answer' } })
  })

  it('checks compatibility and reconciles', async () => {
    t.on('SyncService.Compatibility', () => ({ missing_on_target: ['role'], extra_on_target: [], type_differences: [], key_field: 'uuid' })).on(
      'SyncService.Reconcile',
      (id: number, dry: boolean) => `sync ${id} dry=${dry}`,
    )
    const s = useSyncStore()
    expect((await s.compatibility(1, 'users', 2, 'users')).missing_on_target).toEqual(['role'])
    expect(t.callsOf('SyncService.Compatibility')).toEqual([[1, 'users', 2, 'users']])
    expect(await s.reconcile(4, true)).toBe('sync 4 dry=true')
  })

  it('removes a sync', async () => {
    t.on('SyncService.List', () => [makeSync({ id: 1 }), makeSync({ id: 2 })]).on('SyncService.Delete', () => undefined)
    const s = useSyncStore()
    await s.load()
    await s.remove(1)
    expect(s.syncs.map((x) => x.id)).toEqual([2])
  })
})
