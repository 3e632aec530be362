import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { defineComponent, h } from 'vue'
import type { VueWrapper } from '@vue/test-utils'
import { Events } from '@/api/events'
import { setTransport } from '@/api/transport'
import type { SyncReport } from '@/api/types'
import { setNotifier } from '@/notify'
import { useFleetStore } from '@/stores/fleet'
import SyncPlatformsButton from '@/components/dashboard/SyncPlatformsButton.vue'
import SyncPlatformsProgress from '@/components/dashboard/SyncPlatformsProgress.vue'
import { deferred, goError, installFakeTransport, type FakeTransport } from '../fake-transport'
import { makeAgent } from '../fixtures'
import { byTestId, mountInApp, recordNotifications, settle, type RecordingNotifier } from '../mount'

const Panel = defineComponent({
  setup: () => () => h('div', [h(SyncPlatformsButton), h(SyncPlatformsProgress)]),
})

let t: FakeTransport
let notes: RecordingNotifier
let wrapper: VueWrapper | null = null

beforeEach(() => {
  t = installFakeTransport().on('FleetService.Overview', () => [
    makeAgent({ platform_id: 1, name: 'Shop' }),
    makeAgent({ platform_id: 2, name: 'Blog' }),
    makeAgent({ platform_id: 3, name: 'CRM', online: false }),
  ])
  notes = recordNotifications()
})
afterEach(() => {
  wrapper?.unmount()
  wrapper = null
  setTransport(null)
  setNotifier(null)
  document.body.innerHTML = ''
})

async function mountPanel() {
  wrapper = mountInApp(Panel)
  await useFleetStore().refresh()
  await settle()
  return wrapper
}

async function confirmSyncPlatforms(w: VueWrapper) {
  await w.find('[data-testid="sync-platforms-button"]').trigger('click')
  await settle()
  const confirm = byTestId('sync-platforms-confirm')
  expect(confirm).not.toBeNull()
  confirm!.click()
  await settle()
}

const stateOf = (id: number) => byTestId(`sync-progress-state-${id}`)?.textContent?.trim()

describe('Sync Platforms', () => {
  it('asks for confirmation before anything is pushed', async () => {
    t.on('FleetService.SyncPlatforms', () => ({ revision: 1, results: [] }))
    const w = await mountPanel()
    await w.find('[data-testid="sync-platforms-button"]').trigger('click')
    await settle()
    expect(byTestId('sync-platforms-dialog')?.textContent).toContain('all 3 agents')
    expect(t.callsOf('FleetService.SyncPlatforms')).toHaveLength(0)
    byTestId('sync-platforms-cancel-confirm')!.click()
    await settle()
    expect(t.callsOf('FleetService.SyncPlatforms')).toHaveLength(0)
    expect(byTestId('sync-platforms-progress')).toBeNull()
  })

  it('shows per-agent progress, then the results', async () => {
    const run = deferred<SyncReport>()
    t.on('FleetService.SyncPlatforms', () => run.promise)
    const w = await mountPanel()
    await confirmSyncPlatforms(w)

    expect(byTestId('sync-platforms-progress')?.dataset.state).toBe('running')
    expect(w.find('[data-testid="sync-platforms-button"]').attributes('disabled')).toBeDefined()
    expect(stateOf(1)).toBe('Queued')
    expect(byTestId('sync-progress-count')?.textContent).toBe('0 of 3 agents')

    t.emit(Events.SyncPlatformsProgress, { platform_id: 3, name: 'CRM', phase: 'enroll', done: 0, total: 3, result: null })
    t.emit(Events.SyncPlatformsProgress, { platform_id: 1, name: 'Shop', phase: 'push', done: 0, total: 3, result: null })
    t.emit(Events.SyncPlatformsProgress, {
      platform_id: 2,
      name: 'Blog',
      phase: 'done',
      done: 1,
      total: 3,
      result: { platform_id: 2, name: 'Blog', result: 'ok', code: null, message: null, duration_ms: 80 },
    })
    await settle()
    expect(stateOf(3)).toBe('Enrolling…')
    expect(stateOf(1)).toBe('Pushing…')
    expect(stateOf(2)).toBe('OK')
    expect(byTestId('sync-progress-count')?.textContent).toBe('1 of 3 agents')
    expect(byTestId('sync-progress-bar')?.textContent).toContain('33%')

    run.resolve({
      revision: 9,
      results: [
        { platform_id: 1, name: 'Shop', result: 'failed', code: 'locked', message: 'platform is locked', duration_ms: 40 },
        { platform_id: 2, name: 'Blog', result: 'ok', code: null, message: null, duration_ms: 80 },
        { platform_id: 3, name: 'CRM', result: 'unreachable', code: 'unreachable', message: 'connection refused', duration_ms: 3000 },
      ],
    })
    await settle()
    expect(byTestId('sync-platforms-progress')?.dataset.state).toBe('done')
    expect(stateOf(1)).toBe('Failed')
    expect(stateOf(3)).toBe('Unreachable')
    const failedRow = byTestId('sync-progress-row-1')!.textContent!
    expect(failedRow).toContain('locked')
    expect(failedRow).toContain('platform is locked')
    expect(byTestId('sync-summary-ok')?.textContent).toContain('1')
    expect(byTestId('sync-summary-failed')?.textContent).toContain('1')
    expect(byTestId('sync-summary-unreachable')?.textContent).toContain('1')
    expect(byTestId('sync-platforms-outcome')?.textContent).toContain('Revision 9')
    expect(notes.warnings).toEqual(['Sync Platforms finished (revision 9): 1 ok, 1 failed, 1 unreachable'])
  })

  it('cancels a running Sync Platforms', async () => {
    const run = deferred<SyncReport>()
    t.on('FleetService.SyncPlatforms', () => run.promise).on('FleetService.CancelSyncPlatforms', () => {
      run.reject(goError('canceled', 'cancelled by the admin'))
    })
    const w = await mountPanel()
    await confirmSyncPlatforms(w)
    byTestId('sync-platforms-cancel')!.click()
    await settle()
    expect(t.callsOf('FleetService.CancelSyncPlatforms')).toHaveLength(1)
    expect(byTestId('sync-platforms-progress')?.dataset.state).toBe('canceled')
    expect(notes.infos).toEqual(['Sync Platforms was cancelled'])
  })

  it('notifies a failure with its code and message', async () => {
    t.on('FleetService.SyncPlatforms', () => {
      throw goError('no_sync_token', 'generate the sync token first')
    })
    const w = await mountPanel()
    await confirmSyncPlatforms(w)
    expect(notes.errors).toEqual([{ code: 'no_sync_token', message: 'generate the sync token first', context: 'Sync Platforms failed' }])
    expect(byTestId('sync-platforms-progress')?.dataset.state).toBe('failed')
    expect(byTestId('sync-platforms-outcome')?.textContent).toContain('no_sync_token')
  })
})
