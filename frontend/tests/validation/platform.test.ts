import { describe, expect, it } from 'vitest'
import type { PlatformInput } from '@/api/types'
import { hasErrors } from '@/validation/errors'
import { agentUrlProblem, emptyPlatformInput, isValidDomain, normalisePlatformInput, validatePlatform } from '@/validation/platform'

const TOKEN = 'A'.repeat(20) + 'b_c-' + '9'.repeat(19) // 43 characters, base64url

function valid(over: Partial<PlatformInput> = {}): PlatformInput {
  return { ...emptyPlatformInput(), name: 'Shop', domain: 'shop.example.com', agent_url: 'https://shop.example.com:7443', ...over }
}

describe('validatePlatform', () => {
  it('accepts a complete platform', () => {
    expect(validatePlatform(valid(), { token: TOKEN, requireToken: true })).toEqual({})
  })

  describe('name', () => {
    it.each([
      ['', 'validation.required'],
      ['   ', 'validation.required'],
      ['x'.repeat(256), 'validation.too_long'],
    ])('%j -> %s', (name, key) => {
      expect(validatePlatform(valid({ name })).name).toBe(key)
    })
    it('allows 255 characters', () => expect(validatePlatform(valid({ name: 'x'.repeat(255) })).name).toBeUndefined())
  })

  describe('domain', () => {
    it.each([
      ['', 'validation.required'],
      ['https://shop.example.com', 'validation.domain_scheme'],
      ['shop example.com', 'validation.domain'],
      ['shop.example.com/path', 'validation.domain'],
      ['-bad.example.com', 'validation.domain'],
      ['999.1.1.1', 'validation.domain'],
      ['shop.example.com:70000', 'validation.domain'],
    ])('%j -> %s', (domain, key) => {
      expect(validatePlatform(valid({ domain })).domain).toBe(key)
    })
    it.each(['shop.example.com', 'localhost', '127.0.0.1', 'shop.example.com:8080', 'xn--bcher-kva.example'])('accepts %s', (d) => {
      expect(isValidDomain(d)).toBe(true)
    })
  })

  describe('agent URL', () => {
    it.each([
      ['', 'validation.required'],
      ['shop.example.com', 'validation.agent_url'],
      ['ftp://shop.example.com', 'validation.agent_url'],
      ['https://user:pw@shop.example.com', 'validation.agent_url'],
      ['https://shop.example.com/?x=1', 'validation.agent_url'],
      ['http://shop.example.com:7443', 'validation.agent_url_http'],
    ])('%j -> %s', (agent_url, key) => {
      expect(validatePlatform(valid({ agent_url })).agent_url).toBe(key)
    })
    it.each(['https://shop.example.com:7443', 'http://127.0.0.1:7443', 'http://localhost:7443', 'http://[::1]:7443', 'https://10.0.0.5'])('accepts %s', (u) => {
      expect(agentUrlProblem(u)).toBeNull()
    })
  })

  describe('locked reason', () => {
    it('is required when locked', () => {
      expect(validatePlatform(valid({ locked: true, lock_reason: null })).lock_reason).toBe('validation.lock_reason_required')
      expect(validatePlatform(valid({ locked: true, lock_reason: '  ' })).lock_reason).toBe('validation.lock_reason_required')
    })
    it('is fine with a reason, and not needed when unlocked', () => {
      expect(validatePlatform(valid({ locked: true, lock_reason: 'migration' })).lock_reason).toBeUndefined()
      expect(validatePlatform(valid({ locked: false, lock_reason: null })).lock_reason).toBeUndefined()
    })
  })

  describe('order', () => {
    it.each([-1, 1.5, Number.NaN])('refuses %s', (order) => {
      expect(validatePlatform(valid({ order })).order).toBe('validation.order')
    })
    it.each([0, 1, 100])('accepts %s', (order) => {
      expect(validatePlatform(valid({ order })).order).toBeUndefined()
    })
  })

  it('checks the optional IP address and thumbnail', () => {
    expect(validatePlatform(valid({ ip_address: '10.0.0.1' })).ip_address).toBeUndefined()
    expect(validatePlatform(valid({ ip_address: '2001:db8::1' })).ip_address).toBeUndefined()
    expect(validatePlatform(valid({ ip_address: 'nope' })).ip_address).toBe('validation.ip')
    expect(validatePlatform(valid({ thumbnail: 'https://cdn.example.com/a.png' })).thumbnail).toBeUndefined()
    expect(validatePlatform(valid({ thumbnail: 'javascript:alert(1)' })).thumbnail).toBe('validation.url')
  })

  describe('token', () => {
    it('is required for a new platform', () => {
      expect(validatePlatform(valid(), { token: '', requireToken: true }).token).toBe('validation.token_required')
    })
    it('must be long enough and base64url', () => {
      expect(validatePlatform(valid(), { token: 'short' }).token).toBe('validation.token_format')
      expect(validatePlatform(valid(), { token: 'a'.repeat(40) + '+/=' }).token).toBe('validation.token_format')
      expect(validatePlatform(valid(), { token: TOKEN }).token).toBeUndefined()
    })
    it('is optional when editing', () => {
      expect(hasErrors(validatePlatform(valid({ id: 3 }), { token: null }))).toBe(false)
    })
  })
})

describe('normalisePlatformInput', () => {
  it('trims, lower-cases the domain, drops a trailing slash and empty optionals', () => {
    const n = normalisePlatformInput(
      valid({ name: ' Shop ', domain: 'Shop.Example.COM ', agent_url: 'https://shop.example.com:7443/', ip_address: ' ', thumbnail: '', lock_reason: 'x' }),
    )
    expect(n).toMatchObject({ name: 'Shop', domain: 'shop.example.com', agent_url: 'https://shop.example.com:7443', ip_address: null, thumbnail: null, lock_reason: null })
  })
  it('keeps only the editable fields', () => {
    const n = normalisePlatformInput({ ...valid(), tls_fingerprint: 'sha256:x', created_at: 'now' } as PlatformInput)
    expect(Object.keys(n).sort()).toEqual(Object.keys(emptyPlatformInput()).sort())
  })
})
