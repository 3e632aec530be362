// Platforms: the catalog list and the per-platform operations (tokens, IP lookup, probing).
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { AppError, toAppError } from '@/api/call'
import { PlatformService } from '@/api/services'
import type { Platform, PlatformInput } from '@/api/types'

/** Catalog order: the `order` column first, then name. */
export function comparePlatforms(a: Platform, b: Platform): number {
  return a.order - b.order || a.name.localeCompare(b.name) || a.id - b.id
}

export const usePlatformStore = defineStore('platforms', () => {
  const platforms = ref<Platform[]>([])
  const loading = ref(false)
  const loaded = ref(false)
  const error = ref<AppError | null>(null)

  const byId = computed(() => new Map(platforms.value.map((p) => [p.id, p])))

  function upsert(p: Platform) {
    const i = platforms.value.findIndex((x) => x.id === p.id)
    if (i >= 0) platforms.value.splice(i, 1, p)
    else platforms.value.push(p)
    platforms.value.sort(comparePlatforms)
  }

  async function load(): Promise<Platform[]> {
    loading.value = true
    try {
      const list = await PlatformService.List()
      platforms.value = [...list].sort(comparePlatforms)
      loaded.value = true
      error.value = null
      return platforms.value
    } catch (e) {
      error.value = toAppError(e)
      throw error.value
    } finally {
      loading.value = false
    }
  }

  async function save(input: PlatformInput): Promise<Platform> {
    const saved = await PlatformService.Save(input)
    upsert(saved)
    return saved
  }

  async function remove(id: number): Promise<void> {
    await PlatformService.Delete(id)
    platforms.value = platforms.value.filter((p) => p.id !== id)
  }

  async function acceptFingerprint(id: number, fingerprint: string): Promise<void> {
    await PlatformService.AcceptFingerprint(id, fingerprint)
    const p = byId.value.get(id)
    if (p) upsert({ ...p, tls_fingerprint: fingerprint, pending_fingerprint: null })
  }

  return {
    platforms,
    loading,
    loaded,
    error,
    byId,
    load,
    save,
    remove,
    acceptFingerprint,
    generateToken: PlatformService.GenerateToken,
    setToken: PlatformService.SetToken,
    hasToken: PlatformService.HasToken,
    revealToken: PlatformService.RevealToken,
    rotateToken: PlatformService.RotateToken,
    lookupIP: PlatformService.LookupIP,
    probe: PlatformService.Probe,
  }
})
