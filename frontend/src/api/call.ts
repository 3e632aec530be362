// The one place where a failed call becomes a typed AppError. Both transports reject with
// whatever their channel produces (a Wails rejection string, an HTTP failure, a network
// error); toAppError normalises all of them, and call() is what the service wrappers use.
import { useTransport, type ServiceName } from './transport'

/** Error codes the frontend itself produces or treats specially. The Go side may send others. */
export const ErrorCode = {
  /** A form field is invalid; `field` names it (snake_case, as in the wire types). */
  Validation: 'validation',
  /** Anything unexpected; also a Go error that was not JSON. */
  Internal: 'internal',
  /** The web transport could not reach the control center at all. */
  Network: 'network',
  /** The web session token is missing or no longer valid. */
  Unauthorized: 'unauthorized',
  /** A service method is not bound (desktop) or not found (web). */
  NotBound: 'not_bound',
  /** Long work was cancelled by the admin. */
  Canceled: 'canceled',
} as const

/** A failed call: a code to branch on, a message to show, and the offending form field. */
export class AppError extends Error {
  readonly code: string
  readonly field?: string

  constructor(code: string, message: string, field?: string) {
    super(message)
    this.name = 'AppError'
    this.code = code
    if (field) this.field = field
  }
}

/** What the web transport rejects with when the server answers with a non-2xx status. */
export interface HttpFailure {
  kind: 'http'
  status: number
  body: string
}

/** What a transport rejects with when the channel itself failed (fetch threw). */
export interface NetworkFailure {
  kind: 'network'
  message: string
}

export function isHttpFailure(v: unknown): v is HttpFailure {
  return typeof v === 'object' && v !== null && (v as HttpFailure).kind === 'http'
}

export function isNetworkFailure(v: unknown): v is NetworkFailure {
  return typeof v === 'object' && v !== null && (v as NetworkFailure).kind === 'network'
}

interface ErrorShape {
  code: string
  message: string
  field?: string
}

function asErrorShape(v: unknown): ErrorShape | null {
  if (typeof v !== 'object' || v === null) return null
  const o = v as Record<string, unknown>
  // Tolerate the agent protocol's envelope {"error":{...}} as well as the bare shape.
  if (typeof o.error === 'object' && o.error !== null && !('code' in o)) return asErrorShape(o.error)
  if (typeof o.code !== 'string' || o.code === '') return null
  const message = typeof o.message === 'string' ? o.message : o.code
  const field = typeof o.field === 'string' && o.field !== '' ? o.field : undefined
  return { code: o.code, message, field }
}

function parseJSON(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function codeForStatus(status: number): string {
  if (status === 401 || status === 403) return ErrorCode.Unauthorized
  if (status === 404) return ErrorCode.NotBound
  return ErrorCode.Internal
}

/** Turns anything a transport rejected with into an AppError. */
export function toAppError(reason: unknown): AppError {
  if (reason instanceof AppError) return reason
  if (typeof reason === 'string') {
    const shape = asErrorShape(parseJSON(reason))
    if (shape) return new AppError(shape.code, shape.message, shape.field)
    return new AppError(ErrorCode.Internal, reason.trim() || 'unknown error')
  }
  if (isHttpFailure(reason)) {
    const shape = asErrorShape(parseJSON(reason.body))
    if (shape) return new AppError(shape.code, shape.message, shape.field)
    const text = reason.body.trim()
    return new AppError(codeForStatus(reason.status), text ? `HTTP ${reason.status}: ${text}` : `HTTP ${reason.status}`)
  }
  if (isNetworkFailure(reason)) return new AppError(ErrorCode.Network, reason.message)
  const shape = asErrorShape(reason)
  if (shape) return new AppError(shape.code, shape.message, shape.field)
  if (reason instanceof Error) {
    // Wails may wrap the Go error string in an Error; its message can still be JSON.
    const inner = asErrorShape(parseJSON(reason.message))
    if (inner) return new AppError(inner.code, inner.message, inner.field)
    return new AppError(ErrorCode.Internal, reason.message || reason.name)
  }
  return new AppError(ErrorCode.Internal, reason === undefined || reason === null ? 'unknown error' : String(reason))
}

/** Calls Service.Method on the current transport; a failure always rejects with an AppError. */
export async function call<T>(service: ServiceName, method: string, ...args: unknown[]): Promise<T> {
  try {
    return (await useTransport().invoke(service, method, args)) as T
  } catch (e) {
    throw toAppError(e)
  }
}
