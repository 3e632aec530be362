import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { Events } from '@/api/events'
import { setTransport } from '@/api/transport'
import type { SyncReport } from '@/api/types'
import { useFleetStore } from '@/stores/fleet'
import { deferred, goError, installFakeTransport, type FakeTransport } from '../fake-transport'
import { makeAgent } from '../fixtures'

let t: FakeTransport
beforeEach(() => {
  setActivePinia(createPinia())
  t = installFakeTransport()
})
afterEach(() => {
  setTransport(null)
  vi.useRealTimers()
})

const ok = (id: number, name: string) => ({ platform_id: id, name, result: 'ok' as const, code: null, message: null, duration_ms: 12 })

describe('fleet store: health', () => {
  it('loads the overview with derived counts', async () => {
    t.on('FleetService.Overview', () => [
      makeAgent({ platform_id: 1, name: 'b', online: true, revision: 2, desired_revision: 3, syncs: [{ id: 1, role: 'source', status: true, last_sync: null, pending: 5, sent: 0, applied: 0, failed: 0, lag_ms: 100, has_errors: true, error_message: 'x' }] }),
      makeAgent({ platform_id: 2, name: 'a', online: false }),
    ])
    const s = useFleetStore()
    await s.refresh()
    expect(s.agents.map((a) => a.name)).toEqual(['a', 'b'])
    expect(s.onlineCount).toBe(1)
    expect(s.behindCount).toBe(1)
    expect(s.pendingTotal).toBe(5)
    expect(s.failingSyncs).toBe(1)
    expect(s.byPlatform.get(2)?.online).toBe(false)
  })

  it('applies fleet:status events: the whole fleet or one agent', () => {
    const s = useFleetStore()
    s.startWatching()
    t.emit(Events.FleetStatus, [makeAgent({ platform_id: 1 }), makeAgent({ platform_id: 2 })])
    expect(s.agents).toHaveLength(2)
    t.emit(Events.FleetStatus, makeAgent({ platform_id: 2, online: false }))
    expect(s.agents).toHaveLength(2)
    expect(s.byPlatform.get(2)?.online).toBe(false)
    s.stopWatching()
    expect(t.listenerCount(Events.FleetStatus)).toBe(0)
  })

  it('polls Overview() as a fallback when no event came for an interval', async () => {
    vi.useFakeTimers()
    let calls = 0
    t.on('FleetService.Overview', () => {
      calls++
      return [makeAgent()]
    })
    const s = useFleetStore()
    s.startWatching(1000)
    await vi.advanceTimersByTimeAsync(1000)
    expect(calls).toBe(1)
    // An event resets the clock: the next tick does not poll.
    await vi.advanceTimersByTimeAsync(500)
    t.emit(Events.FleetStatus, [makeAgent()])
    await vi.advanceTimersByTimeAsync(500)
    expect(calls).toBe(1)
    await vi.advanceTimersByTimeAsync(1000)
    expect(calls).toBe(2)
    s.stopWatching()
  })

  it('keeps a failed poll in error without throwing', async () => {
    vi.useFakeTimers()
    t.on('FleetService.Overview', () => {
      throw goError('internal', 'catalog closed')
    })
    const s = useFleetStore()
    s.startWatching(1000)
    await vi.advanceTimersByTimeAsync(1000)
    expect(s.error).toMatchObject({ code: 'internal' })
    s.stopWatching()
  })
})

describe('fleet store: Sync Platforms', () => {
  async function withAgents() {
    t.on('FleetService.Overview', () => [makeAgent({ platform_id: 1, name: 'Shop' }), makeAgent({ platform_id: 2, name: 'Blog' })])
    const s = useFleetStore()
    await s.refresh()
    return s
  }

  it('tracks per-agent progress from events and finishes with the report', async () => {
    const run = deferred<SyncReport>()
    t.on('FleetService.SyncPlatforms', () => run.promise)
    const s = await withAgents()
    const p = s.syncPlatforms()
    expect(s.running).toBe(true)
    expect(s.run.rows.map((r) => [r.platform_id, r.phase])).toEqual([
      [2, 'queued'],
      [1, 'queued'],
    ])
    t.emit(Events.SyncPlatformsProgress, { platform_id: 1, name: 'Shop', phase: 'push', done: 0, total: 2, result: null })
    expect(s.run.rows.find((r) => r.platform_id === 1)?.phase).toBe('push')
    t.emit(Events.SyncPlatformsProgress, { platform_id: 1, name: 'Shop', phase: 'done', done: 1, total: 2, result: ok(1, 'Shop') })
    expect(s.percent).toBe(50)
    const report: SyncReport = {
      revision: 4,
      results: [ok(1, 'Shop'), { platform_id: 2, name: 'Blog', result: 'unreachable', code: 'unreachable', message: 'connection refused', duration_ms: 3000 }],
    }
    run.resolve(report)
    await expect(p).resolves.toEqual(report)
    expect(s.run.state).toBe('done')
    expect(s.percent).toBe(100)
    expect(s.summary).toEqual({ ok: 1, failed: 0, unreachable: 1 })
    expect(s.run.rows.find((r) => r.platform_id === 2)?.result?.code).toBe('unreachable')
    expect(t.listenerCount(Events.SyncPlatformsProgress)).toBe(0)
    expect(t.listenerCount(Events.SyncPlatformsDone)).toBe(0)
  })

  it('does not start twice while running', async () => {
    const run = deferred<SyncReport>()
    t.on('FleetService.SyncPlatforms', () => run.promise)
    const s = await withAgents()
    const first = s.syncPlatforms()
    await expect(s.syncPlatforms()).resolves.toBeNull()
    run.resolve({ revision: 1, results: [] })
    await first
    expect(t.callsOf('FleetService.SyncPlatforms')).toHaveLength(1)
  })

  it('ends as canceled when the Go side reports the cancellation', async () => {
    const run = deferred<SyncReport>()
    t.on('FleetService.SyncPlatforms', () => run.promise).on('FleetService.CancelSyncPlatforms', () => {
      run.reject(goError('canceled', 'Sync Platforms was cancelled'))
    })
    const s = await withAgents()
    const p = s.syncPlatforms()
    await s.cancelSyncPlatforms()
    await expect(p).resolves.toBeNull()
    expect(s.run.state).toBe('canceled')
  })

  it('ends as failed with the typed error otherwise', async () => {
    t.on('FleetService.SyncPlatforms', () => {
      throw goError('no_sync_token', 'generate the sync token first')
    })
    const s = await withAgents()
    await expect(s.syncPlatforms()).rejects.toMatchObject({ code: 'no_sync_token' })
    expect(s.run.state).toBe('failed')
    expect(s.run.error?.message).toBe('generate the sync token first')
    s.dismissRun()
    expect(s.run.state).toBe('idle')
  })
})
