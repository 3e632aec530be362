import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { VueWrapper } from '@vue/test-utils'
import { setTransport } from '@/api/transport'
import type { Sync, SyncInput } from '@/api/types'
import { setNotifier } from '@/notify'
import { usePlatformStore } from '@/stores/platforms'
import SyncForm from '@/components/syncs/SyncForm.vue'
import { goError, installFakeTransport, type FakeTransport } from '../fake-transport'
import { makePlatform, makeSync } from '../fixtures'
import { mountInApp, recordNotifications, settle, type RecordingNotifier } from '../mount'

const col = (name: string, type = 'varchar(255)') => ({ name, type, nullable: true, primary_key: false })
const users = { name: 'users', columns: [col('id', 'integer'), col('uuid'), col('name'), col('email')], unique: [['uuid']] }
const members = { name: 'members', columns: [col('id', 'integer'), col('uuid'), col('name'), col('mail')], unique: [['uuid']] }

let t: FakeTransport
let notes: RecordingNotifier
let wrapper: VueWrapper | null = null

beforeEach(() => {
  t = installFakeTransport()
    .on('PlatformService.List', () => [makePlatform({ id: 1, domain: 'shop.example.com' }), makePlatform({ id: 2, domain: 'blog.example.com' })])
    .on('SyncService.Models', (id: number) => (id === 1 ? [users] : [users, members]))
    .on('SyncService.Compatibility', () => ({ missing_on_target: ['email'], extra_on_target: ['mail'], type_differences: [], key_field: 'uuid' }))
    .on('SyncService.Save', (s: SyncInput) => makeSync({ ...s, id: s.id || 7 }))
    .on('SyncService.Capabilities', (id: number) =>
      id === 1 ? { transformers: ['declarative', 'lowercase_email', 'wp_user'], handlers: ['meta'] } : { transformers: ['declarative'], handlers: [] },
    )
  notes = recordNotifications()
})
afterEach(() => {
  wrapper?.unmount()
  wrapper = null
  setTransport(null)
  setNotifier(null)
  document.body.innerHTML = ''
})

async function mountForm(sync: Sync | null) {
  wrapper = mountInApp(SyncForm, { sync })
  await usePlatformStore().load()
  await settle()
  await new Promise((r) => setTimeout(r, 300)) // the compatibility check is debounced
  await settle()
  return wrapper
}

const find = (w: VueWrapper, id: string) => w.find(`[data-testid="${id}"]`)
const formApi = (w: VueWrapper) =>
  w.findComponent(SyncForm).vm as unknown as { form: SyncInput; rows: { source: string; target: string }[]; configText: string }

describe('SyncForm', () => {
  it('loads both sides\' models live and previews the Moox title', async () => {
    const w = await mountForm(makeSync({ source_platform_id: 1, target_platform_id: 2, target_model: 'members', use_platform_relations: true }))
    expect(t.callsOf('SyncService.Models')).toEqual([[1], [2]])
    expect(find(w, 'sync-title-preview').text()).toBe('shop.example.com (users) to blog.example.com (members) by platform')
  })

  it('shows the compatibility report', async () => {
    const w = await mountForm(makeSync({ source_platform_id: 1, target_platform_id: 2, target_model: 'members' }))
    expect(t.callsOf('SyncService.Compatibility')).toEqual([[1, 'users', 2, 'members']])
    expect(find(w, 'compat-key').text()).toBe('uuid')
    expect(find(w, 'compat-missing').text()).toContain('email')
    expect(find(w, 'compat-extra').text()).toContain('mail')
  })

  it('refuses the same model on the same platform before saving', async () => {
    const w = await mountForm(makeSync({ source_platform_id: 1, target_platform_id: 1, target_model: 'users' }))
    expect(find(w, 'sync-target-model-error').text()).toContain('cannot be the same model on the same platform')
    expect(t.callsOf('SyncService.Compatibility')).toHaveLength(0)
    await find(w, 'sync-save').trigger('click')
    await settle()
    expect(t.callsOf('SyncService.Save')).toHaveLength(0)
  })

  it('maps same-name fields when "sync all fields" is turned off, requires mappings, and saves them', async () => {
    const w = await mountForm(makeSync({ source_platform_id: 1, target_platform_id: 2, target_model: 'members', sync_all_fields: true }))
    expect(find(w, 'mapping-editor').exists()).toBe(false)
    await find(w, 'sync-all-fields').trigger('click')
    await settle()
    const sameNames = [
      { source: 'id', target: 'id' },
      { source: 'uuid', target: 'uuid' },
      { source: 'name', target: 'name' },
    ]
    expect(formApi(w).rows).toEqual(sameNames)

    for (let i = 0; i < 3; i++) await find(w, 'mapping-remove-0').trigger('click')
    await find(w, 'sync-save').trigger('click')
    await settle()
    expect(find(w, 'sync-field-mappings-error').text()).toBe('Map at least one field, or sync all fields')
    expect(t.callsOf('SyncService.Save')).toHaveLength(0)

    await find(w, 'mapping-auto').trigger('click')
    await settle()
    expect(formApi(w).rows).toEqual(sameNames)
    await find(w, 'mapping-remove-0').trigger('click')
    await find(w, 'sync-save').trigger('click')
    await settle()
    const saved = t.callsOf('SyncService.Save')[0][0] as SyncInput
    expect(saved).toMatchObject({
      id: 1,
      title: 'shop.example.com (users) to blog.example.com (members)',
      sync_all_fields: false,
      field_mappings: { uuid: 'uuid', name: 'name' },
    })
    expect(w.findComponent(SyncForm).emitted('saved')).toHaveLength(1)
  })

  it('refuses an empty interval (the input itself clamps to at least 1)', async () => {
    const w = await mountForm(makeSync({ source_platform_id: 1, target_platform_id: 2, target_model: 'members' }))
    await find(w, 'sync-interval').setValue('')
    await find(w, 'sync-interval').trigger('blur')
    await settle()
    await find(w, 'sync-save').trigger('click')
    await settle()
    expect(find(w, 'sync-interval-error').text()).toBe('A whole number of minutes, at least 1')
    expect(t.callsOf('SyncService.Save')).toHaveLength(0)
  })

  it('shows a model listing failure in place and as a notification', async () => {
    t.on('SyncService.Models', (id: number) => {
      if (id === 2) throw goError('unreachable', 'the agent did not answer')
      return [users]
    })
    const w = await mountForm(makeSync({ source_platform_id: 1, target_platform_id: 2 }))
    expect(find(w, 'sync-target-models-error').text()).toContain('the agent did not answer')
    expect(notes.errors[0]).toMatchObject({ code: 'unreachable' })
  })

  it('runs a dry run for an existing sync and shows its result', async () => {
    t.on('SyncService.Reconcile', (id: number, dry: boolean) => `sync ${id}: 2 rows would be repaired (dry=${dry})`)
    const w = await mountForm(makeSync({ id: 4, source_platform_id: 1, target_platform_id: 2, target_model: 'members' }))
    await find(w, 'sync-dry-run').trigger('click')
    await settle()
    expect(t.callsOf('SyncService.Reconcile')).toEqual([[4, true]])
    expect(document.querySelector('[data-testid="reconcile-result"]')?.textContent).toBe('sync 4: 2 rows would be repaired (dry=true)')
  })

  it('offers the transformers of the source platform\'s agent, and keeps one it does not have', async () => {
    const w = await mountForm(makeSync({ source_platform_id: 1, target_platform_id: 2, target_model: 'members', use_transformer_class: 'gone' }))
    expect(t.callsOf('SyncService.Capabilities')).toEqual([[1]])
    const select = w.findAllComponents({ name: 'Select' }).find((c) => c.attributes('data-testid') === 'sync-transformer')
    const options = select!.props('options') as { label: string; value: string }[]
    expect(options.map((o) => o.value)).toEqual(['gone', 'declarative', 'lowercase_email', 'wp_user'])
    expect(options[0].label).toBe('gone (not on this agent)')
  })

  it('edits the transformer config as JSON, checks it before saving, and saves it as an object', async () => {
    const w = await mountForm(makeSync({ source_platform_id: 1, target_platform_id: 2, target_model: 'members' }))
    expect(find(w, 'sync-transformer-config').exists()).toBe(false)
    formApi(w).form.use_transformer_class = 'declarative'
    await settle()
    expect(find(w, 'sync-transformer-config').exists()).toBe(true)

    await find(w, 'sync-save').trigger('click')
    await settle()
    expect(find(w, 'sync-transformer-config-error').text()).toContain('needs a config')

    await find(w, 'sync-transformer-config').setValue('{"drop": ["mail"')
    await find(w, 'sync-save').trigger('click')
    await settle()
    expect(find(w, 'sync-transformer-config-error').text()).toBe('Not valid JSON')

    await find(w, 'sync-transformer-config').setValue('{"drop": "mail"}')
    await find(w, 'sync-save').trigger('click')
    await settle()
    expect(find(w, 'sync-transformer-config-error').text()).toContain('drop: a list of field names')

    await find(w, 'sync-transformer-config').setValue('{"drop": ["mail"], "rename": {"name": "title"}, "delay": "30s"}')
    await find(w, 'sync-save').trigger('click')
    await settle()
    expect(t.callsOf('SyncService.Save')).toHaveLength(1)
    const saved = t.callsOf('SyncService.Save')[0][0] as SyncInput
    expect(saved).toMatchObject({
      use_transformer_class: 'declarative',
      transformer_config: { drop: ['mail'], rename: { name: 'title' }, delay: '30s' },
    })
  })

  it('refuses a config without a transformer, and shows the server\'s message on the field', async () => {
    const w = await mountForm(makeSync({ source_platform_id: 1, target_platform_id: 2, target_model: 'members', use_transformer_class: 'lowercase_email' }))
    await find(w, 'sync-transformer-config').setValue('{"fields": ["mail"]}')
    formApi(w).form.use_transformer_class = null
    await settle()
    await find(w, 'sync-save').trigger('click')
    await settle()
    expect(find(w, 'sync-transformer-config-error').text()).toBe('Choose a transformer for this config, or clear it')
    expect(t.callsOf('SyncService.Save')).toHaveLength(0)

    t.on('SyncService.Save', () => {
      throw goError('validation', 'fields: name at least one field', 'transformer_config')
    })
    formApi(w).form.use_transformer_class = 'lowercase_email'
    await find(w, 'sync-transformer-config').setValue('{"fields": []}')
    await find(w, 'sync-save').trigger('click')
    await settle()
    expect(find(w, 'sync-transformer-config-error').text()).toBe('fields: name at least one field')
  })

  it('offers no reconcile on a new sync', async () => {
    const w = await mountForm(null)
    expect(find(w, 'sync-reconcile').exists()).toBe(false)
    expect(find(w, 'sync-title-preview').text()).toBe('? (?) to ? (?)')
  })
})
