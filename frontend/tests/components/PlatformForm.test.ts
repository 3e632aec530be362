import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { VueWrapper } from '@vue/test-utils'
import { setTransport } from '@/api/transport'
import type { Platform, PlatformInput } from '@/api/types'
import { setNotifier } from '@/notify'
import PlatformForm from '@/components/platforms/PlatformForm.vue'
import { goError, installFakeTransport, type FakeTransport } from '../fake-transport'
import { makePlatform } from '../fixtures'
import { mountInApp, recordNotifications, settle, type RecordingNotifier } from '../mount'

const TOKEN = 'k'.repeat(43)

let t: FakeTransport
let notes: RecordingNotifier
let wrapper: VueWrapper | null = null

beforeEach(() => {
  t = installFakeTransport()
    .on('PlatformService.GenerateToken', () => TOKEN)
    .on('PlatformService.HasToken', () => true)
    .on('PlatformService.SetToken', () => undefined)
    .on('PlatformService.LookupIP', () => '192.0.2.10')
    .on('PlatformService.Save', (p: PlatformInput) => makePlatform({ ...p, id: p.id || 12 }))
  notes = recordNotifications()
})
afterEach(() => {
  wrapper?.unmount()
  wrapper = null
  setTransport(null)
  setNotifier(null)
  document.body.innerHTML = ''
})

async function mountForm(platform: Platform | null = null) {
  wrapper = mountInApp(PlatformForm, { platform })
  await settle()
  return wrapper
}

const field = (w: VueWrapper, id: string) => w.find(`[data-testid="${id}"]`)

async function fill(w: VueWrapper, values: Record<string, string>) {
  for (const [id, v] of Object.entries(values)) await field(w, id).setValue(v)
}

describe('PlatformForm', () => {
  it('generates a token for a new platform', async () => {
    const w = await mountForm()
    expect(t.callsOf('PlatformService.GenerateToken')).toHaveLength(1)
    expect((field(w, 'platform-token').element as HTMLInputElement).value).toBe(TOKEN)
  })

  it('shows validation errors on the fields and does not save', async () => {
    const w = await mountForm()
    await field(w, 'platform-save').trigger('click')
    await settle()
    expect(field(w, 'platform-name-error').text()).toBe('Required')
    expect(field(w, 'platform-domain-error').text()).toBe('Required')
    expect(field(w, 'platform-agent-url-error').text()).toBe('Required')
    expect(t.callsOf('PlatformService.Save')).toHaveLength(0)
    expect(notes.warnings).toEqual(['Please correct the highlighted fields'])

    await fill(w, { 'platform-name': 'Shop', 'platform-domain': 'https://shop.example.com', 'platform-agent-url': 'http://shop.example.com:7443' })
    await field(w, 'platform-save').trigger('click')
    await settle()
    expect(field(w, 'platform-name-error').exists()).toBe(false)
    expect(field(w, 'platform-domain-error').text()).toBe('Enter the domain without https://')
    expect(field(w, 'platform-agent-url-error').text()).toContain('loopback')
  })

  it('requires a reason when locked', async () => {
    const w = await mountForm()
    await fill(w, { 'platform-name': 'Shop', 'platform-domain': 'shop.example.com', 'platform-agent-url': 'https://shop.example.com:7443' })
    await field(w, 'platform-locked').trigger('click')
    await settle()
    expect(field(w, 'platform-lock-reason').exists()).toBe(true)
    await field(w, 'platform-save').trigger('click')
    await settle()
    expect(field(w, 'platform-lock-reason-error').text()).toBe('Say why the platform is locked')
    await fill(w, { 'platform-lock-reason': 'Migration' })
    await field(w, 'platform-save').trigger('click')
    await settle()
    expect(t.callsOf('PlatformService.Save')[0][0]).toMatchObject({ locked: true, lock_reason: 'Migration' })
  })

  it('looks up the IP address from the domain', async () => {
    const w = await mountForm()
    await fill(w, { 'platform-domain': 'shop.example.com' })
    await field(w, 'platform-lookup-ip').trigger('click')
    await settle()
    expect(t.callsOf('PlatformService.LookupIP')).toEqual([['shop.example.com']])
    expect((field(w, 'platform-ip').element as HTMLInputElement).value).toBe('192.0.2.10')
  })

  it('saves a new platform, then stores its token and emits saved', async () => {
    const w = await mountForm()
    await fill(w, { 'platform-name': ' Shop ', 'platform-domain': 'Shop.Example.com', 'platform-agent-url': 'https://shop.example.com:7443/' })
    await field(w, 'platform-save').trigger('click')
    await settle()
    expect(t.callsOf('PlatformService.Save')[0][0]).toEqual({
      id: 0,
      name: 'Shop',
      domain: 'shop.example.com',
      ip_address: null,
      thumbnail: null,
      master: false,
      locked: false,
      lock_reason: null,
      show_in_menu: true,
      order: 0,
      read_only: false,
      agent_url: 'https://shop.example.com:7443',
    })
    expect(t.callsOf('PlatformService.SetToken')).toEqual([[12, TOKEN]])
    const form = w.findComponent(PlatformForm)
    expect(form.emitted('saved')?.[0][0]).toMatchObject({ id: 12, name: 'Shop' })
    expect(notes.successes).toEqual(['Platform Shop saved'])
  })

  it('shows a Go validation error on its field and as a notification', async () => {
    t.on('PlatformService.Save', () => {
      throw goError('validation', 'another platform has this domain', 'domain')
    })
    const w = await mountForm()
    await fill(w, { 'platform-name': 'Shop', 'platform-domain': 'shop.example.com', 'platform-agent-url': 'https://shop.example.com:7443' })
    await field(w, 'platform-save').trigger('click')
    await settle()
    expect(field(w, 'platform-domain-error').text()).toBe('another platform has this domain')
    expect(notes.errors).toEqual([{ code: 'validation', message: 'another platform has this domain', context: 'Could not save the platform' }])
    expect(w.findComponent(PlatformForm).emitted('saved')).toBeUndefined()
  })

  it('probes the agent and pins the confirmed fingerprint of an existing platform', async () => {
    t.on('PlatformService.Probe', () => ({ fingerprint: 'sha256:abc', version: '0.1.0', enrolled: true, platform_id: 5 })).on(
      'PlatformService.AcceptFingerprint',
      () => undefined,
    )
    const w = await mountForm(makePlatform({ id: 5, tls_fingerprint: null }))
    await field(w, 'platform-probe').trigger('click')
    await settle()
    expect(t.callsOf('PlatformService.Probe')).toEqual([['https://p5.example.com:7443']])
    expect(field(w, 'platform-probe-fingerprint').text()).toBe('sha256:abc')
    await field(w, 'platform-accept-fingerprint').trigger('click')
    await settle()
    expect(t.callsOf('PlatformService.AcceptFingerprint')).toEqual([[5, 'sha256:abc']])
  })

  it('shows a probe failure as a notification with its code', async () => {
    t.on('PlatformService.Probe', () => {
      throw goError('unreachable', 'dial tcp: connection refused')
    })
    const w = await mountForm(makePlatform({ id: 5 }))
    await field(w, 'platform-probe').trigger('click')
    await settle()
    expect(notes.errors[0]).toMatchObject({ code: 'unreachable', message: 'dial tcp: connection refused' })
    expect(field(w, 'platform-probe-result').exists()).toBe(false)
  })

  it('edits an existing platform without asking for a token', async () => {
    const w = await mountForm(makePlatform({ id: 3, name: 'Blog' }))
    expect(t.callsOf('PlatformService.HasToken')).toEqual([[3]])
    expect(field(w, 'platform-token').exists()).toBe(false)
    expect(field(w, 'platform-token-stored').exists()).toBe(true)
    await fill(w, { 'platform-name': 'Blog 2' })
    await field(w, 'platform-save').trigger('click')
    await settle()
    expect(t.callsOf('PlatformService.Save')[0][0]).toMatchObject({ id: 3, name: 'Blog 2' })
    expect(t.callsOf('PlatformService.SetToken')).toHaveLength(0)
  })
})
