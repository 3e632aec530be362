// The web-mode session token. The control center opens the browser at `/?session=<token>`;
// on first load the token moves into sessionStorage and disappears from the visible URL.

const STORAGE_KEY = 'mooxsync.session'
const PARAM = 'session'

/** Reads the token from the page URL (and stores it), else from sessionStorage. */
export function captureSessionToken(win: Window = window): string | null {
  const url = new URL(win.location.href)
  let token = url.searchParams.get(PARAM)
  if (token) {
    url.searchParams.delete(PARAM)
  } else {
    // Tolerate the token inside the hash route as well: `#/dashboard?session=…`.
    const q = url.hash.indexOf('?')
    if (q >= 0) {
      const params = new URLSearchParams(url.hash.slice(q + 1))
      token = params.get(PARAM)
      if (token) {
        params.delete(PARAM)
        const rest = params.toString()
        url.hash = url.hash.slice(0, q) + (rest ? `?${rest}` : '')
      }
    }
  }
  if (!token) return sessionToken(win)
  try {
    win.sessionStorage.setItem(STORAGE_KEY, token)
  } catch {
    // Storage may be disabled; the token still works for this page's lifetime via memory.
    memoryToken = token
  }
  win.history.replaceState(win.history.state, '', url.pathname + url.search + url.hash)
  return token
}

let memoryToken: string | null = null

/** The token for requests and the event stream, or null when there is none. */
export function sessionToken(win: Window = window): string | null {
  try {
    return win.sessionStorage.getItem(STORAGE_KEY) ?? memoryToken
  } catch {
    return memoryToken
  }
}
