// Activity: pushes and agent errors, newest first.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { AppError, toAppError } from '@/api/call'
import { ActivityService } from '@/api/services'
import type { ActivityEntry } from '@/api/types'

export const DEFAULT_ACTIVITY_LIMIT = 200

export const useActivityStore = defineStore('activity', () => {
  const entries = ref<ActivityEntry[]>([])
  const loading = ref(false)
  const error = ref<AppError | null>(null)
  const limit = ref(DEFAULT_ACTIVITY_LIMIT)

  async function load(nextLimit?: number): Promise<ActivityEntry[]> {
    if (nextLimit) limit.value = nextLimit
    loading.value = true
    try {
      const list = await ActivityService.List(limit.value)
      entries.value = [...list].sort((a, b) => Date.parse(b.at) - Date.parse(a.at) || b.id - a.id)
      error.value = null
      return entries.value
    } catch (e) {
      error.value = toAppError(e)
      throw error.value
    } finally {
      loading.value = false
    }
  }

  return { entries, loading, error, limit, load }
})
