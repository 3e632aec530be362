import { afterEach, describe, expect, it, vi } from 'vitest'
import { call } from '@/api/call'
import { Events, onEvent } from '@/api/events'
import { captureSessionToken, sessionToken } from '@/api/session'
import { SESSION_HEADER, createDesktopTransport, createWebTransport, detectTransport, setTransport, type WailsGlobals } from '@/api/transport'

afterEach(() => {
  setTransport(null)
  sessionStorage.clear()
})

function fakeFetch(status: number, body: string) {
  return vi.fn(async (_url: RequestInfo | URL, _init?: RequestInit) => new Response(body, { status }))
}

class FakeEventSource {
  static last: FakeEventSource | null = null
  onmessage: ((ev: MessageEvent) => void) | null = null
  closed = false
  constructor(readonly url: string) {
    FakeEventSource.last = this
  }
  close() {
    this.closed = true
  }
  push(data: unknown) {
    this.onmessage?.({ data: typeof data === 'string' ? data : JSON.stringify(data) } as MessageEvent)
  }
}

describe('web transport', () => {
  it('POSTs /rpc/<Service>.<Method> with the args array and the session header', async () => {
    const f = fakeFetch(200, '{"id":7,"name":"Shop"}')
    setTransport(createWebTransport({ fetch: f, token: () => 'tok-1' }))
    const res = await call('PlatformService', 'Save', { id: 0, name: 'Shop' })
    expect(res).toEqual({ id: 7, name: 'Shop' })
    const [url, init] = f.mock.calls[0]
    expect(url).toBe('/rpc/PlatformService.Save')
    expect(init?.method).toBe('POST')
    expect((init?.headers as Record<string, string>)[SESSION_HEADER]).toBe('tok-1')
    expect(JSON.parse(String(init?.body))).toEqual([{ id: 0, name: 'Shop' }])
  })

  it('sends an empty array for no args and resolves null for an empty body', async () => {
    const f = fakeFetch(200, '')
    setTransport(createWebTransport({ fetch: f, token: () => 't' }))
    await expect(call('FleetService', 'CancelSyncPlatforms')).resolves.toBeNull()
    expect(f.mock.calls[0][1]?.body).toBe('[]')
  })

  it('turns an error response into an AppError with the field', async () => {
    setTransport(createWebTransport({ fetch: fakeFetch(422, '{"code":"validation","message":"taken","field":"domain"}'), token: () => 't' }))
    await expect(call('PlatformService', 'Save', {})).rejects.toMatchObject({ code: 'validation', message: 'taken', field: 'domain' })
  })

  it('reports a failed fetch as code network', async () => {
    const f = vi.fn(async () => {
      throw new TypeError('Failed to fetch')
    })
    setTransport(createWebTransport({ fetch: f, token: () => 't' }))
    await expect(call('ActivityService', 'List', 10)).rejects.toMatchObject({ code: 'network', message: 'Failed to fetch' })
  })

  it('reports a 2xx body that is not JSON as code internal', async () => {
    setTransport(createWebTransport({ fetch: fakeFetch(200, 'hello'), token: () => 't' }))
    await expect(call('SettingsService', 'Get')).rejects.toMatchObject({ code: 'internal' })
  })

  it('dispatches /events messages {name, data} by name over one EventSource', () => {
    setTransport(createWebTransport({ token: () => 'a b', EventSource: FakeEventSource as unknown as typeof EventSource, fetch: fakeFetch(200, '') }))
    const progress = vi.fn()
    const done = vi.fn()
    const off1 = onEvent(Events.SyncPlatformsProgress, progress)
    const off2 = onEvent(Events.SyncPlatformsDone, done)
    const es = FakeEventSource.last!
    expect(es.url).toBe('/events?session=a%20b')
    es.push({ name: 'sync-platforms:progress', data: { platform_id: 1 } })
    es.push('not json')
    es.push({ name: 'sync-platforms:done', data: { revision: 2, results: [] } })
    expect(progress).toHaveBeenCalledWith({ platform_id: 1 })
    expect(done).toHaveBeenCalledWith({ revision: 2, results: [] })
    off1()
    expect(es.closed).toBe(false)
    off2()
    expect(es.closed).toBe(true)
  })
})

describe('desktop transport', () => {
  it('calls window.go.app.<Service>.<Method> with positional args', async () => {
    const Reconcile = vi.fn(async (id: unknown, dry: unknown) => `reconciled ${id} ${dry}`)
    const t = createDesktopTransport({ go: { app: { SyncService: { Reconcile } } } })
    setTransport(t)
    await expect(call('SyncService', 'Reconcile', 3, true)).resolves.toBe('reconciled 3 true')
    expect(Reconcile).toHaveBeenCalledWith(3, true)
  })

  it('parses the rejected JSON string of a Go error', async () => {
    const Save = vi.fn(() => Promise.reject('{"code":"validation","message":"interval must be at least 1","field":"interval"}'))
    setTransport(createDesktopTransport({ go: { app: { SyncService: { Save } } } }))
    await expect(call('SyncService', 'Save', {})).rejects.toMatchObject({ code: 'validation', field: 'interval' })
  })

  it('rejects with not_bound for a missing method', async () => {
    setTransport(createDesktopTransport({ go: { app: {} } }))
    await expect(call('FleetService', 'Overview')).rejects.toMatchObject({ code: 'not_bound', message: 'FleetService.Overview is not bound' })
  })

  it('subscribes through runtime.EventsOn and unsubscribes with the returned function', () => {
    const offFn = vi.fn()
    let registered: ((...d: unknown[]) => void) | null = null
    const runtime: WailsGlobals['runtime'] = {
      EventsOn: vi.fn((_name: string, cb: (...d: unknown[]) => void) => {
        registered = cb
        return offFn
      }),
      EventsOff: vi.fn(),
    }
    setTransport(createDesktopTransport({ go: { app: {} }, runtime }))
    const cb = vi.fn()
    const off = onEvent(Events.FleetStatus, cb)
    expect(runtime.EventsOn).toHaveBeenCalledWith('fleet:status', expect.any(Function))
    registered!([{ platform_id: 1 }])
    expect(cb).toHaveBeenCalledWith([{ platform_id: 1 }])
    off()
    expect(offFn).toHaveBeenCalled()
  })

  it('is chosen when window.go.app exists, web mode otherwise', () => {
    expect(detectTransport({ go: { app: {} } } as unknown as Window).kind).toBe('desktop')
    expect(detectTransport({} as Window).kind).toBe('web')
  })
})

describe('session token', () => {
  function fakeWindow(href: string) {
    const replaced: string[] = []
    const win = {
      location: { href },
      sessionStorage,
      history: { state: null, replaceState: (_s: unknown, _t: string, url: string) => replaced.push(url) },
    } as unknown as Window
    return { win, replaced }
  }

  it('moves ?session= from the URL into sessionStorage and hides it', () => {
    const { win, replaced } = fakeWindow('http://127.0.0.1:8080/?session=abc&x=1#/platforms')
    expect(captureSessionToken(win)).toBe('abc')
    expect(sessionToken(win)).toBe('abc')
    expect(replaced).toEqual(['/?x=1#/platforms'])
  })

  it('also finds the token inside the hash route', () => {
    const { win, replaced } = fakeWindow('http://127.0.0.1:8080/#/dashboard?session=xyz')
    expect(captureSessionToken(win)).toBe('xyz')
    expect(replaced).toEqual(['/#/dashboard'])
  })

  it('keeps the stored token on later loads', () => {
    sessionStorage.setItem('mooxsync.session', 'kept')
    const { win, replaced } = fakeWindow('http://127.0.0.1:8080/#/syncs')
    expect(captureSessionToken(win)).toBe('kept')
    expect(replaced).toEqual([])
  })
})
