import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { VueWrapper } from '@vue/test-utils'
import { setTransport } from '@/api/transport'
import { setNotifier } from '@/notify'
import { usePlatformStore } from '@/stores/platforms'
import RelationsPage from '@/components/relations/RelationsPage.vue'
import { goError, installFakeTransport, type FakeTransport } from '../fake-transport'
import { makePlatform } from '../fixtures'
import { mountInApp, recordNotifications, settle, type RecordingNotifier } from '../mount'

const posts = { name: 'posts', columns: [{ name: 'id', type: 'INTEGER', nullable: false, primary_key: true }], unique: [['ulid']] }

let t: FakeTransport
let notes: RecordingNotifier
let wrapper: VueWrapper | null = null
/** The relations the fake agent of platform 1 holds, by record key. */
let held: Record<string, number[]>

beforeEach(() => {
  held = { '01HZPOST': [2] }
  t = installFakeTransport()
    .on('PlatformService.List', () => [
      makePlatform({ id: 1, name: 'Shop', domain: 'shop.example.com' }),
      makePlatform({ id: 2, name: 'Blog', domain: 'blog.example.com' }),
      makePlatform({ id: 3, name: 'Wiki', domain: 'wiki.example.com' }),
    ])
    .on('SyncService.Models', () => [posts])
    .on('SyncService.Relations', (_p: number, _m: string, key: string) => {
      if (!(key in held)) throw goError('not_found', `model "posts" has no record with ulid "${key}"`)
      return held[key]
    })
    .on('SyncService.SetRelations', (_p: number, _m: string, key: string, ids: number[]) => (held[key] = ids))
  notes = recordNotifications()
})
afterEach(() => {
  wrapper?.unmount()
  wrapper = null
  setTransport(null)
  setNotifier(null)
  document.body.innerHTML = ''
})

type PageApi = {
  query: { platform: number; model: string; key: string }
  record: { stored: number[] } | null
  chosen: number[]
}

async function mountPage() {
  wrapper = mountInApp(RelationsPage)
  await usePlatformStore().load()
  await settle()
  return { w: wrapper, api: wrapper.findComponent(RelationsPage).vm as unknown as PageApi }
}

const find = (w: VueWrapper, id: string) => w.find(`[data-testid="${id}"]`)

describe('RelationsPage', () => {
  it('requires platform, model and identifier before it asks the agent', async () => {
    const { w } = await mountPage()
    await find(w, 'relations-lookup').trigger('click')
    await settle()
    expect(find(w, 'relations-platform-error').text()).toBe('Required')
    expect(find(w, 'relations-key-error').text()).toBe('Required')
    expect(t.callsOf('SyncService.Relations')).toHaveLength(0)
  })

  it('looks a record up by its identifier, shows its platforms and saves a change', async () => {
    const { w, api } = await mountPage()
    api.query.platform = 1
    await settle()
    expect(t.callsOf('SyncService.Models')).toEqual([[1]])
    api.query.model = 'posts'
    await settle()
    await find(w, 'relations-key').setValue(' 01HZPOST ')
    await find(w, 'relations-lookup').trigger('click')
    await settle()
    expect(t.callsOf('SyncService.Relations')).toEqual([[1, 'posts', '01HZPOST']])
    expect(find(w, 'relations-record').text()).toContain('posts 01HZPOST on Shop')
    expect(find(w, 'relations-platforms').text()).toContain('Blog')
    expect(find(w, 'relations-save').attributes('disabled')).toBeDefined()

    api.chosen = [3, 2]
    await settle()
    await find(w, 'relations-save').trigger('click')
    await settle()
    expect(t.callsOf('SyncService.SetRelations')).toEqual([[1, 'posts', '01HZPOST', [2, 3]]])
    expect(held['01HZPOST']).toEqual([2, 3])
    expect(api.record?.stored).toEqual([2, 3])
    expect(notes.successes).toEqual(['Relations of 01HZPOST saved'])
    expect(find(w, 'relations-platforms').text()).toContain('Wiki')

    api.chosen = []
    await settle()
    await find(w, 'relations-save').trigger('click')
    await settle()
    expect(t.callsOf('SyncService.SetRelations')[1]).toEqual([1, 'posts', '01HZPOST', []])
    expect(find(w, 'relations-empty').exists()).toBe(true)
  })

  it('shows the agent\'s error for an unknown record', async () => {
    const { w, api } = await mountPage()
    Object.assign(api.query, { platform: 1 })
    await settle()
    Object.assign(api.query, { model: 'posts', key: 'nope' })
    await settle()
    await find(w, 'relations-lookup').trigger('click')
    await settle()
    expect(notes.errors[0]).toMatchObject({ code: 'not_found', context: 'Could not read the relations' })
    expect(find(w, 'relations-record').exists()).toBe(false)
  })
})
