// Mounts a component the way the app does: Pinia, i18n, and the Naive UI providers.
import { defineComponent, h, type Component } from 'vue'
import { mount } from '@vue/test-utils'
import { createPinia, setActivePinia, type Pinia } from 'pinia'
import AppProviders from '@/components/layout/AppProviders.vue'
import { createAppI18n } from '@/i18n'
import { setNotifier, type Notifier } from '@/notify'

export interface RecordingNotifier extends Notifier {
  errors: { code: string; message: string; context?: string }[]
  successes: string[]
  warnings: string[]
  infos: string[]
}

export function recordNotifications(): RecordingNotifier {
  const n: RecordingNotifier = {
    errors: [],
    successes: [],
    warnings: [],
    infos: [],
    error: (err, context) => n.errors.push({ code: err.code, message: err.message, context }),
    success: (text) => n.successes.push(text),
    warning: (text) => n.warnings.push(text),
    info: (text) => n.infos.push(text),
  }
  setNotifier(n)
  return n
}

export function mountInApp(component: Component, props: Record<string, unknown> = {}, pinia: Pinia = createPinia()) {
  setActivePinia(pinia)
  const Host = defineComponent({
    setup() {
      return () => h(AppProviders, null, { default: () => h(component, props) })
    },
  })
  return mount(Host, { global: { plugins: [pinia, createAppI18n('en')] }, attachTo: document.body })
}

/** Lets pending promises and Vue updates run. */
export async function settle(rounds = 5) {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setTimeout(r, 0))
}

/** Finds an element anywhere in the document (modals and drawers are teleported to body). */
export function byTestId<T extends Element = HTMLElement>(id: string): T | null {
  return document.querySelector<T>(`[data-testid="${id}"]`)
}
