// The fleet: every agent's health (fleet:status events with a periodic Overview() fallback)
// and the Sync Platforms run with its per-agent progress.
import { defineStore } from 'pinia'
import { computed, reactive, ref } from 'vue'
import { AppError, ErrorCode, toAppError } from '@/api/call'
import { Events, onEvent } from '@/api/events'
import { FleetService, normaliseAgent, normaliseReport } from '@/api/services'
import type { AgentView, Progress, ProgressPhase, PushResult, SyncReport } from '@/api/types'

/** Default fallback poll; skipped while fleet:status events arrive more often. */
export const POLL_INTERVAL_MS = 15_000

export interface ProgressRow {
  platform_id: number
  name: string
  phase: ProgressPhase | 'queued'
  result: PushResult | null
}

export type RunState = 'idle' | 'running' | 'done' | 'canceled' | 'failed'

export function agentIsBehind(a: AgentView): boolean {
  return a.revision < a.desired_revision
}

export const useFleetStore = defineStore('fleet', () => {
  const agents = ref<AgentView[]>([])
  const loading = ref(false)
  const error = ref<AppError | null>(null)
  const lastUpdated = ref<number | null>(null)
  let lastEventAt = 0

  const byPlatform = computed(() => new Map(agents.value.map((a) => [a.platform_id, a])))
  const onlineCount = computed(() => agents.value.filter((a) => a.online).length)
  const behindCount = computed(() => agents.value.filter(agentIsBehind).length)
  const pendingTotal = computed(() => agents.value.reduce((n, a) => n + a.syncs.reduce((m, s) => m + (s.pending || 0), 0), 0))
  const failingSyncs = computed(() => agents.value.reduce((n, a) => n + a.syncs.filter((s) => s.has_errors).length, 0))

  function setAgents(list: AgentView[]) {
    agents.value = list.map(normaliseAgent).sort((a, b) => a.name.localeCompare(b.name) || a.platform_id - b.platform_id)
    lastUpdated.value = Date.now()
  }

  /** Applies a fleet:status payload: the whole fleet, or one agent. */
  function applyStatus(payload: AgentView[] | AgentView | null | undefined) {
    lastEventAt = Date.now()
    if (Array.isArray(payload)) return setAgents(payload)
    if (!payload || typeof payload.platform_id !== 'number') return
    const next = agents.value.filter((a) => a.platform_id !== payload.platform_id)
    next.push(payload)
    setAgents(next)
  }

  async function refresh(): Promise<AgentView[]> {
    loading.value = true
    try {
      setAgents(await FleetService.Overview())
      error.value = null
      return agents.value
    } catch (e) {
      error.value = toAppError(e)
      throw error.value
    } finally {
      loading.value = false
    }
  }

  let stopWatch: (() => void) | null = null

  /** Subscribes to fleet:status and polls Overview() when events stop coming. Idempotent. */
  function startWatching(intervalMs = POLL_INTERVAL_MS) {
    if (stopWatch) return
    const off = onEvent(Events.FleetStatus, applyStatus)
    const timer = setInterval(() => {
      if (typeof document !== 'undefined' && document.hidden) return
      if (Date.now() - lastEventAt < intervalMs || loading.value) return
      refresh().catch(() => {
        // kept in `error`, which the dashboard shows; a poll must not spam notifications
      })
    }, intervalMs)
    stopWatch = () => {
      off()
      clearInterval(timer)
    }
  }

  function stopWatching() {
    stopWatch?.()
    stopWatch = null
  }

  // --- Sync Platforms -------------------------------------------------------------------

  const run = reactive({
    state: 'idle' as RunState,
    rows: [] as ProgressRow[],
    done: 0,
    total: 0,
    report: null as SyncReport | null,
    error: null as AppError | null,
    canceling: false,
    startedAt: 0,
    finishedAt: 0,
  })

  const running = computed(() => run.state === 'running')
  const percent = computed(() => {
    if (run.total > 0) return Math.min(100, Math.round((run.done / run.total) * 100))
    return run.state === 'running' || run.state === 'idle' ? 0 : 100
  })
  const summary = computed(() => {
    const s = { ok: 0, failed: 0, unreachable: 0 }
    for (const r of run.report?.results ?? []) s[r.result] = (s[r.result] ?? 0) + 1
    return s
  })

  function upsertRow(platformId: number, name: string): ProgressRow {
    let row = run.rows.find((r) => r.platform_id === platformId)
    if (!row) {
      run.rows.push({ platform_id: platformId, name, phase: 'queued', result: null })
      row = run.rows[run.rows.length - 1]
    }
    if (name) row.name = name
    return row
  }

  function applyProgress(p: Progress) {
    if (run.state !== 'running') return
    const row = upsertRow(p.platform_id, p.name)
    row.phase = p.phase
    if (p.result) row.result = p.result
    if (p.total > 0) run.total = p.total
    run.done = Math.max(run.done, p.done)
  }

  function applyReport(r: SyncReport | null | undefined) {
    const report = normaliseReport(r)
    run.report = report
    for (const res of report.results) {
      const row = upsertRow(res.platform_id, res.name)
      row.phase = 'done'
      row.result = res
    }
    run.total = Math.max(run.total, report.results.length)
    run.done = run.total
  }

  /**
   * Enrolls new agents and pushes the desired state to all of them. Resolves with the
   * report (null when cancelled); any other failure rejects with an AppError.
   */
  async function syncPlatforms(): Promise<SyncReport | null> {
    if (run.state === 'running') return null
    Object.assign(run, {
      state: 'running',
      rows: agents.value.map((a) => ({ platform_id: a.platform_id, name: a.name, phase: 'queued', result: null })),
      done: 0,
      total: agents.value.length,
      report: null,
      error: null,
      canceling: false,
      startedAt: Date.now(),
      finishedAt: 0,
    })
    const offProgress = onEvent(Events.SyncPlatformsProgress, applyProgress)
    const offDone = onEvent(Events.SyncPlatformsDone, (r) => {
      if (run.state === 'running') applyReport(r)
    })
    try {
      const report = await FleetService.SyncPlatforms()
      applyReport(report)
      run.state = run.canceling ? 'canceled' : 'done'
      return report
    } catch (e) {
      const err = toAppError(e)
      if (err.code === ErrorCode.Canceled) {
        run.state = 'canceled'
        return null
      }
      run.error = err
      run.state = 'failed'
      throw err
    } finally {
      run.finishedAt = Date.now()
      run.canceling = false
      offProgress()
      offDone()
      refresh().catch(() => {})
    }
  }

  async function cancelSyncPlatforms(): Promise<void> {
    if (run.state !== 'running') return
    run.canceling = true
    try {
      await FleetService.CancelSyncPlatforms()
    } catch (e) {
      run.canceling = false
      throw toAppError(e)
    }
  }

  function dismissRun() {
    if (run.state === 'running') return
    Object.assign(run, { state: 'idle', rows: [], done: 0, total: 0, report: null, error: null })
  }

  return {
    agents,
    loading,
    error,
    lastUpdated,
    byPlatform,
    onlineCount,
    behindCount,
    pendingTotal,
    failingSyncs,
    applyStatus,
    refresh,
    startWatching,
    stopWatching,
    run,
    running,
    percent,
    summary,
    syncPlatforms,
    cancelSyncPlatforms,
    dismissRun,
  }
})
