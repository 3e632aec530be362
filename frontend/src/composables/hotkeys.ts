// Page-level keyboard shortcuts, active while the component is mounted. Single keys are
// ignored while the user types in a field, in a modal or a drawer; combinations with Ctrl,
// Alt or Meta always fire.
import { onBeforeUnmount, onMounted } from 'vue'

export type HotkeyHandler = (e: KeyboardEvent) => void

export function isTyping(e: KeyboardEvent): boolean {
  const el = e.target as HTMLElement | null
  if (!el || !el.tagName) return false
  const tag = el.tagName.toLowerCase()
  return tag === 'input' || tag === 'textarea' || tag === 'select' || el.isContentEditable
}

function overlayOpen(): boolean {
  return typeof document !== 'undefined' && document.querySelector('.n-modal, .n-drawer') !== null
}

/** "ctrl+s", "alt+1", "/", "n": modifiers in the order ctrl, alt, shift, meta. */
export function hotkeyName(e: KeyboardEvent): string {
  const parts: string[] = []
  if (e.ctrlKey) parts.push('ctrl')
  if (e.altKey) parts.push('alt')
  if (e.metaKey) parts.push('meta')
  const key = e.code?.startsWith('Digit') && e.altKey ? e.code.slice(5) : e.key.toLowerCase()
  parts.push(key)
  return parts.join('+')
}

export function useHotkeys(map: Record<string, HotkeyHandler>, opts: { allowInOverlay?: boolean } = {}) {
  function onKey(e: KeyboardEvent) {
    const name = hotkeyName(e)
    const handler = map[name]
    if (!handler) return
    const plain = !e.ctrlKey && !e.altKey && !e.metaKey
    if (plain && (isTyping(e) || (!opts.allowInOverlay && overlayOpen()))) return
    e.preventDefault()
    handler(e)
  }
  onMounted(() => window.addEventListener('keydown', onKey))
  onBeforeUnmount(() => window.removeEventListener('keydown', onKey))
}
