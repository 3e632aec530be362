// Validation of the platform form. Pure: the form and the tests call it the same way.
import type { PlatformInput } from '@/api/types'
import type { FieldErrors } from './errors'

export type PlatformField = 'name' | 'domain' | 'ip_address' | 'agent_url' | 'lock_reason' | 'order' | 'thumbnail' | 'token'

export const NAME_MAX = 255

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const TOKEN = /^[A-Za-z0-9_-]+$/

/** Minimum length of a platform token (PROTOCOL.md section 2). */
export const TOKEN_MIN = 32

export function isIPv4(s: string): boolean {
  return IPV4.test(s)
}

export function isIPv6(s: string): boolean {
  if (!s.includes(':') || !/^[0-9a-f:.]+$/i.test(s)) return false
  try {
    return new URL(`http://[${s}]/`).hostname !== ''
  } catch {
    return false
  }
}

/** A host name or IPv4 address with an optional port; no scheme, path or spaces. */
export function isValidDomain(s: string): boolean {
  const m = /^([^:/\s]+)(?::(\d{1,5}))?$/.exec(s)
  if (!m) return false
  const [, host, port] = m
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return false
  if (host.length > 253) return false
  if (/^[\d.]+$/.test(host)) return isIPv4(host)
  return host.split('.').every((label) => LABEL.test(label))
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\./.test(h)
}

/**
 * The agent's base URL: https, or plain http only on a loopback address (PROTOCOL.md
 * section 4). Returns the i18n key of the problem, or null when valid.
 */
export function agentUrlProblem(s: string): string | null {
  let u: URL
  try {
    u = new URL(s)
  } catch {
    return 'validation.agent_url'
  }
  if (!u.hostname || u.username || u.password || u.search || u.hash) return 'validation.agent_url'
  if (u.protocol === 'https:') return null
  if (u.protocol === 'http:') return isLoopbackHost(u.hostname) ? null : 'validation.agent_url_http'
  return 'validation.agent_url'
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s)
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== ''
  } catch {
    return false
  }
}

export interface PlatformValidationOptions {
  /** The token typed or generated in the form (not part of PlatformInput: it goes to the keyring). */
  token?: string | null
  /** A new platform needs a token. */
  requireToken?: boolean
}

export function validatePlatform(p: PlatformInput, opts: PlatformValidationOptions = {}): FieldErrors<PlatformField> {
  const e: FieldErrors<PlatformField> = {}
  const name = p.name.trim()
  if (!name) e.name = 'validation.required'
  else if (name.length > NAME_MAX) e.name = 'validation.too_long'

  const domain = p.domain.trim()
  if (!domain) e.domain = 'validation.required'
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(domain)) e.domain = 'validation.domain_scheme'
  else if (!isValidDomain(domain)) e.domain = 'validation.domain'

  const ip = p.ip_address?.trim()
  if (ip && !isIPv4(ip) && !isIPv6(ip)) e.ip_address = 'validation.ip'

  const agentUrl = p.agent_url.trim()
  if (!agentUrl) e.agent_url = 'validation.required'
  else {
    const problem = agentUrlProblem(agentUrl)
    if (problem) e.agent_url = problem
  }

  if (p.locked && !p.lock_reason?.trim()) e.lock_reason = 'validation.lock_reason_required'

  if (!Number.isInteger(p.order) || p.order < 0) e.order = 'validation.order'

  const thumb = p.thumbnail?.trim()
  if (thumb && !isHttpUrl(thumb)) e.thumbnail = 'validation.url'

  const token = opts.token?.trim() ?? ''
  if (!token) {
    if (opts.requireToken) e.token = 'validation.token_required'
  } else if (token.length < TOKEN_MIN || !TOKEN.test(token)) e.token = 'validation.token_format'

  return e
}

/** A blank form for a new platform. */
export function emptyPlatformInput(): PlatformInput {
  return {
    id: 0,
    name: '',
    domain: '',
    ip_address: null,
    thumbnail: null,
    master: false,
    locked: false,
    lock_reason: null,
    show_in_menu: true,
    order: 0,
    read_only: false,
    agent_url: '',
  }
}

/** The editable fields of a stored platform. */
export function toPlatformInput(p: PlatformInput): PlatformInput {
  return {
    id: p.id,
    name: p.name,
    domain: p.domain,
    ip_address: p.ip_address,
    thumbnail: p.thumbnail,
    master: p.master,
    locked: p.locked,
    lock_reason: p.lock_reason,
    show_in_menu: p.show_in_menu,
    order: p.order,
    read_only: p.read_only,
    agent_url: p.agent_url,
  }
}

/** Trims strings and turns empty optional strings into null, as the catalog stores them. */
export function normalisePlatformInput(p: PlatformInput): PlatformInput {
  const opt = (s: string | null) => (s && s.trim() ? s.trim() : null)
  return {
    ...toPlatformInput(p),
    name: p.name.trim(),
    domain: p.domain.trim().toLowerCase(),
    ip_address: opt(p.ip_address),
    thumbnail: opt(p.thumbnail),
    lock_reason: p.locked ? opt(p.lock_reason) : null,
    agent_url: p.agent_url.trim().replace(/\/+$/, ''),
  }
}
