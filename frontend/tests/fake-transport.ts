// A Transport for tests: handlers per "Service.Method", recorded calls, and emit() for events.
import { setTransport, type EventHandler, type ServiceName, type Transport } from '@/api/transport'

type Handler = (...args: any[]) => unknown

export class FakeTransport implements Transport {
  readonly kind = 'fake'
  readonly calls: { method: string; args: unknown[] }[] = []
  private handlers = new Map<string, Handler>()
  private listeners = new Map<string, Set<EventHandler>>()

  /** Answers Service.Method with fn (its return value, or what it throws, as a rejection). */
  on(method: `${ServiceName}.${string}`, fn: Handler): this {
    this.handlers.set(method, fn)
    return this
  }

  async invoke(service: ServiceName, method: string, args: unknown[]): Promise<unknown> {
    const key = `${service}.${method}`
    this.calls.push({ method: key, args })
    const h = this.handlers.get(key)
    if (!h) throw JSON.stringify({ code: 'not_bound', message: `${key} is not faked` })
    return await h(...args)
  }

  subscribe(name: string, handler: EventHandler): () => void {
    let set = this.listeners.get(name)
    if (!set) this.listeners.set(name, (set = new Set()))
    set.add(handler)
    return () => set.delete(handler)
  }

  emit(name: string, data: unknown): void {
    for (const h of [...(this.listeners.get(name) ?? [])]) h(data)
  }

  listenerCount(name: string): number {
    return this.listeners.get(name)?.size ?? 0
  }

  callsOf(method: string): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args)
  }
}

/** Installs a fresh FakeTransport as the app's transport. */
export function installFakeTransport(): FakeTransport {
  const t = new FakeTransport()
  setTransport(t)
  return t
}

/** A Go error as the desktop transport delivers it: a rejected JSON string. */
export function goError(code: string, message: string, field?: string): string {
  return JSON.stringify(field ? { code, message, field } : { code, message })
}

/** A promise with its resolve/reject exposed. */
export function deferred<T>() {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}
