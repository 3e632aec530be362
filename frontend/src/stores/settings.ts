// Settings: log level, theme and language (persisted by the Go side), the fleet's sync token
// and the agent install snippet. Theme and language are also cached locally so the first
// paint after a restart already has them.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { AppError, toAppError } from '@/api/call'
import { SettingsService } from '@/api/services'
import type { Language, Settings, ThemeMode } from '@/api/types'

const THEME_KEY = 'mooxsync.theme'
const LANGUAGE_KEY = 'mooxsync.language'

function cached<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
  try {
    const v = localStorage.getItem(key) as T | null
    return v && allowed.includes(v) ? v : fallback
  } catch {
    return fallback
  }
}

function remember(key: string, value: string) {
  try {
    localStorage.setItem(key, value)
  } catch {
    // storage disabled: the Go side still has it
  }
}

export const THEMES: readonly ThemeMode[] = ['light', 'dark', 'auto']
export const LANGUAGES: readonly Language[] = ['en', 'de']

function browserLanguage(): Language {
  return typeof navigator !== 'undefined' && navigator.language?.toLowerCase().startsWith('de') ? 'de' : 'en'
}

export const useSettingsStore = defineStore('settings', () => {
  const settings = ref<Settings | null>(null)
  const loading = ref(false)
  const saving = ref(false)
  const error = ref<AppError | null>(null)
  const localTheme = ref<ThemeMode>(cached(THEME_KEY, THEMES, 'auto'))
  const localLanguage = ref<Language>(cached(LANGUAGE_KEY, LANGUAGES, browserLanguage()))

  const theme = computed<ThemeMode>(() => settings.value?.theme ?? localTheme.value)
  const language = computed<Language>(() => settings.value?.language ?? localLanguage.value)

  function accept(s: Settings): Settings {
    settings.value = s
    localTheme.value = s.theme
    localLanguage.value = s.language
    remember(THEME_KEY, s.theme)
    remember(LANGUAGE_KEY, s.language)
    return s
  }

  async function load(): Promise<Settings> {
    loading.value = true
    try {
      const s = accept(await SettingsService.Get())
      error.value = null
      return s
    } catch (e) {
      error.value = toAppError(e)
      throw error.value
    } finally {
      loading.value = false
    }
  }

  /** Saves a change; on failure the previous values stay in force. */
  async function save(patch: Partial<Pick<Settings, 'log_level' | 'theme' | 'language'>>): Promise<Settings> {
    const base = settings.value ?? (await load())
    saving.value = true
    try {
      return accept(await SettingsService.Save({ ...base, ...patch }))
    } finally {
      saving.value = false
    }
  }

  async function generateSyncToken(): Promise<void> {
    await SettingsService.GenerateSyncToken()
    if (settings.value) settings.value = { ...settings.value, has_sync_token: true }
    await load().catch(() => {})
  }

  async function rotateSyncToken(): Promise<void> {
    await SettingsService.RotateSyncToken()
    await load().catch(() => {})
  }

  return {
    settings,
    loading,
    saving,
    error,
    theme,
    language,
    load,
    save,
    generateSyncToken,
    rotateSyncToken,
    agentSnippet: (platformId: number, withToken = false) =>
      withToken ? SettingsService.AgentSnippetWithToken(platformId) : SettingsService.AgentSnippet(platformId),
  }
})
