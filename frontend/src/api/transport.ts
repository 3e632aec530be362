// Two transports behind one interface: the Wails bindings (desktop) and HTTP + Server-Sent
// Events (web mode, when window.go is absent). Tests inject their own with setTransport.
import { sessionToken } from './session'

/** The Go services bound under window.go.app (desktop) or served at /rpc/<Service>.<Method> (web). */
export type ServiceName = 'PlatformService' | 'SyncService' | 'FleetService' | 'ActivityService' | 'SettingsService'

export type EventHandler = (data: unknown) => void

export interface Transport {
  readonly kind: string
  /** Calls Service.Method with positional args; rejects with the channel's raw failure (see call.ts). */
  invoke(service: ServiceName, method: string, args: unknown[]): Promise<unknown>
  /** Subscribes to a backend event; returns the function that unsubscribes. */
  subscribe(name: string, handler: EventHandler): () => void
}

type BoundMethod = (...args: unknown[]) => Promise<unknown>

/** The parts of the Wails runtime the desktop transport uses. */
export interface WailsGlobals {
  go?: { app?: Record<string, Record<string, BoundMethod> | undefined> }
  runtime?: {
    EventsOn(name: string, cb: (...data: unknown[]) => void): (() => void) | void
    EventsOff(name: string, ...additional: string[]): void
    ClipboardSetText?(text: string): Promise<boolean>
  }
}

declare global {
  interface Window {
    go?: WailsGlobals['go']
    runtime?: WailsGlobals['runtime']
  }
}

export function createDesktopTransport(win: WailsGlobals): Transport {
  return {
    kind: 'desktop',
    invoke(service, method, args) {
      const fn = win.go?.app?.[service]?.[method]
      if (typeof fn !== 'function') {
        return Promise.reject({ code: 'not_bound', message: `${service}.${method} is not bound` })
      }
      try {
        return Promise.resolve(fn(...args))
      } catch (e) {
        return Promise.reject(e)
      }
    },
    subscribe(name, handler) {
      const rt = win.runtime
      if (!rt) return () => {}
      const off = rt.EventsOn(name, (...data: unknown[]) => handler(data[0]))
      return typeof off === 'function' ? off : () => rt.EventsOff(name)
    },
  }
}

export interface WebTransportOptions {
  /** Prefix for /rpc and /events; empty for same origin. */
  baseUrl?: string
  token?: () => string | null
  fetch?: typeof fetch
  EventSource?: typeof EventSource
}

/** The HTTP header carrying the web session token. */
export const SESSION_HEADER = 'X-Mooxsync-Session'

export function createWebTransport(opts: WebTransportOptions = {}): Transport {
  const base = opts.baseUrl ?? ''
  const token = opts.token ?? (() => sessionToken())
  const doFetch = opts.fetch ?? ((input, init) => fetch(input, init))
  const ES = opts.EventSource ?? (typeof EventSource === 'undefined' ? undefined : EventSource)

  const handlers = new Map<string, Set<EventHandler>>()
  let source: EventSource | null = null

  function open() {
    if (source || !ES) return
    const t = token()
    source = new ES(`${base}/events${t ? `?session=${encodeURIComponent(t)}` : ''}`)
    source.onmessage = (ev: MessageEvent) => {
      let msg: { name?: unknown; data?: unknown }
      try {
        msg = JSON.parse(String(ev.data))
      } catch {
        return
      }
      if (typeof msg?.name !== 'string') return
      for (const h of [...(handlers.get(msg.name) ?? [])]) h(msg.data)
    }
  }

  function closeIfIdle() {
    for (const set of handlers.values()) if (set.size) return
    source?.close()
    source = null
  }

  return {
    kind: 'web',
    async invoke(service, method, args) {
      const headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'application/json' }
      const t = token()
      if (t) headers[SESSION_HEADER] = t
      let res: Response
      try {
        res = await doFetch(`${base}/rpc/${service}.${method}`, {
          method: 'POST',
          headers,
          body: JSON.stringify(args),
        })
      } catch (e) {
        throw { kind: 'network', message: e instanceof Error ? e.message : String(e) }
      }
      const text = await res.text()
      if (!res.ok) throw { kind: 'http', status: res.status, body: text }
      if (text.trim() === '') return null
      try {
        return JSON.parse(text)
      } catch {
        throw { code: 'internal', message: `${service}.${method}: response is not JSON` }
      }
    },
    subscribe(name, handler) {
      let set = handlers.get(name)
      if (!set) handlers.set(name, (set = new Set()))
      set.add(handler)
      open()
      return () => {
        set.delete(handler)
        closeIfIdle()
      }
    },
  }
}

/** Desktop when the Wails bindings are present, else web mode. */
export function detectTransport(win: Window = window): Transport {
  return win.go?.app ? createDesktopTransport(win) : createWebTransport()
}

let current: Transport | null = null

/** The transport in use; detected on first use so the Wails globals have been injected. */
export function useTransport(): Transport {
  if (!current) current = detectTransport()
  return current
}

/** Replaces the transport (tests), or resets detection with null. */
export function setTransport(t: Transport | null): void {
  current = t
}
