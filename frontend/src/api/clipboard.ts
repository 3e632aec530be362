// Copy to the clipboard: the Wails runtime in the desktop app (the webview's clipboard API
// may be unavailable there), the async Clipboard API in a browser, execCommand as a last resort.

export async function copyText(text: string): Promise<void> {
  const rt = window.runtime
  if (rt?.ClipboardSetText) {
    if (await rt.ClipboardSetText(text)) return
  }
  if (navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text)
      return
    } catch {
      // fall through to the legacy path (e.g. an insecure origin)
    }
  }
  const el = document.createElement('textarea')
  el.value = text
  el.setAttribute('readonly', '')
  el.style.position = 'fixed'
  el.style.opacity = '0'
  document.body.appendChild(el)
  el.select()
  const ok = document.execCommand?.('copy') ?? false
  el.remove()
  if (!ok) throw { code: 'clipboard', message: 'the clipboard is not available' }
}
