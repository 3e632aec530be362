// Syncs: the list (optionally filtered by platform), the live model listing and the
// transformers and handlers per platform, compatibility checks, reconciliation, and the
// platform relations of records.
import { defineStore } from 'pinia'
import { reactive, ref } from 'vue'
import { AppError, toAppError } from '@/api/call'
import { SyncService } from '@/api/services'
import type { Capabilities, CompatReport, Model, Sync, SyncInput } from '@/api/types'

export interface ModelListing {
  loading: boolean
  error: AppError | null
  models: Model[]
  loaded: boolean
}

export interface CapabilityListing {
  loading: boolean
  error: AppError | null
  value: Capabilities | null
}

export interface SyncFilter {
  source: number
  target: number
}

export const useSyncStore = defineStore('syncs', () => {
  const syncs = ref<Sync[]>([])
  const loading = ref(false)
  const error = ref<AppError | null>(null)
  const filter = reactive<SyncFilter>({ source: 0, target: 0 })
  /** Models listed live from each platform's agent, keyed by platform id. */
  const models = reactive<Record<number, ModelListing>>({})
  /** The transformers and handlers of each platform's agent, keyed by platform id. */
  const capabilities = reactive<Record<number, CapabilityListing>>({})

  function matchesFilter(s: Sync) {
    return (!filter.source || s.source_platform_id === filter.source) && (!filter.target || s.target_platform_id === filter.target)
  }

  async function load(next?: Partial<SyncFilter>): Promise<Sync[]> {
    if (next) Object.assign(filter, next)
    loading.value = true
    try {
      syncs.value = await SyncService.List(filter.source, filter.target)
      error.value = null
      return syncs.value
    } catch (e) {
      error.value = toAppError(e)
      throw error.value
    } finally {
      loading.value = false
    }
  }

  async function save(input: SyncInput): Promise<Sync> {
    const saved = await SyncService.Save(input)
    const i = syncs.value.findIndex((s) => s.id === saved.id)
    if (!matchesFilter(saved)) {
      if (i >= 0) syncs.value.splice(i, 1)
    } else if (i >= 0) syncs.value.splice(i, 1, saved)
    else syncs.value.push(saved)
    return saved
  }

  async function remove(id: number): Promise<void> {
    await SyncService.Delete(id)
    syncs.value = syncs.value.filter((s) => s.id !== id)
  }

  /** Lists the platform's models from its agent; cached unless force. */
  async function loadModels(platformId: number, force = false): Promise<Model[]> {
    const cur = models[platformId]
    if (cur && !force && (cur.loaded || cur.loading)) return cur.models
    const entry: ModelListing = cur ?? { loading: false, error: null, models: [], loaded: false }
    models[platformId] = entry
    const listing = models[platformId]
    listing.loading = true
    listing.error = null
    try {
      listing.models = await SyncService.Models(platformId)
      listing.loaded = true
      return listing.models
    } catch (e) {
      listing.error = toAppError(e)
      listing.loaded = false
      throw listing.error
    } finally {
      listing.loading = false
    }
  }

  function modelColumns(platformId: number, model: string): string[] | null {
    const m = models[platformId]?.models.find((x) => x.name === model)
    return m ? m.columns.map((c) => c.name) : null
  }

  function compatibility(sourcePlatformId: number, sourceModel: string, targetPlatformId: number, targetModel: string): Promise<CompatReport> {
    return SyncService.Compatibility(sourcePlatformId, sourceModel, targetPlatformId, targetModel)
  }

  function reconcile(syncId: number, dryRun: boolean): Promise<string> {
    return SyncService.Reconcile(syncId, dryRun)
  }

  /** Asks the platform's agent which transformers and handlers it has; cached unless force. */
  async function loadCapabilities(platformId: number, force = false): Promise<Capabilities | null> {
    const cur = capabilities[platformId]
    if (cur && !force && (cur.value || cur.loading)) return cur.value
    capabilities[platformId] = cur ?? { loading: false, error: null, value: null }
    const entry = capabilities[platformId]
    entry.loading = true
    entry.error = null
    try {
      entry.value = await SyncService.Capabilities(platformId)
      return entry.value
    } catch (e) {
      entry.error = toAppError(e)
      throw entry.error
    } finally {
      entry.loading = false
    }
  }

  function relations(platformId: number, model: string, key: string): Promise<number[]> {
    return SyncService.Relations(platformId, model, key)
  }

  function setRelations(platformId: number, model: string, key: string, platformIds: number[]): Promise<number[]> {
    return SyncService.SetRelations(platformId, model, key, platformIds)
  }

  return {
    syncs,
    loading,
    error,
    filter,
    models,
    capabilities,
    load,
    save,
    remove,
    loadModels,
    modelColumns,
    compatibility,
    reconcile,
    loadCapabilities,
    relations,
    setRelations,
  }
})
