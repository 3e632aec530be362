import { afterEach, describe, expect, it } from 'vitest'
import { AppError, ErrorCode, call, toAppError } from '@/api/call'
import { setTransport } from '@/api/transport'
import { PlatformService, SyncService, FleetService } from '@/api/services'
import { goError, installFakeTransport } from '../fake-transport'

afterEach(() => setTransport(null))

describe('toAppError', () => {
  it('parses a Go error delivered as a JSON string (desktop)', () => {
    const e = toAppError('{"code":"validation","message":"name is required","field":"name"}')
    expect(e).toBeInstanceOf(AppError)
    expect(e).toMatchObject({ code: 'validation', message: 'name is required', field: 'name' })
  })

  it('turns a non-JSON string into code internal', () => {
    const e = toAppError('sql: database is closed')
    expect(e).toMatchObject({ code: ErrorCode.Internal, message: 'sql: database is closed' })
    expect(e.field).toBeUndefined()
  })

  it('turns JSON that is not an error shape into code internal with the raw text', () => {
    expect(toAppError('[1,2]')).toMatchObject({ code: 'internal', message: '[1,2]' })
    expect(toAppError('{"message":"no code"}')).toMatchObject({ code: 'internal' })
  })

  it('passes an AppError through unchanged', () => {
    const original = new AppError('conflict', 'in use')
    expect(toAppError(original)).toBe(original)
  })

  it('maps an HTTP failure with a JSON body (web mode)', () => {
    const e = toAppError({ kind: 'http', status: 422, body: '{"code":"validation","message":"bad domain","field":"domain"}' })
    expect(e).toMatchObject({ code: 'validation', message: 'bad domain', field: 'domain' })
  })

  it('accepts the agent protocol envelope {"error":{…}}', () => {
    const e = toAppError({ kind: 'http', status: 409, body: '{"error":{"code":"conflict","message":"used by sync 3"}}' })
    expect(e).toMatchObject({ code: 'conflict', message: 'used by sync 3' })
  })

  it('maps an HTTP failure without a JSON body by status', () => {
    expect(toAppError({ kind: 'http', status: 401, body: 'no session' })).toMatchObject({ code: 'unauthorized', message: 'HTTP 401: no session' })
    expect(toAppError({ kind: 'http', status: 404, body: '' })).toMatchObject({ code: 'not_bound', message: 'HTTP 404' })
    expect(toAppError({ kind: 'http', status: 502, body: '<html>' })).toMatchObject({ code: 'internal' })
  })

  it('maps a network failure to code network', () => {
    expect(toAppError({ kind: 'network', message: 'Failed to fetch' })).toMatchObject({ code: 'network', message: 'Failed to fetch' })
  })

  it('maps a plain error object and an Error', () => {
    expect(toAppError({ code: 'not_bound', message: 'X.Y is not bound' })).toMatchObject({ code: 'not_bound' })
    expect(toAppError(new TypeError('boom'))).toMatchObject({ code: 'internal', message: 'boom' })
    expect(toAppError(new Error('{"code":"locked","message":"platform is locked"}'))).toMatchObject({ code: 'locked' })
  })

  it('never yields an empty message', () => {
    expect(toAppError(undefined).message).toBe('unknown error')
    expect(toAppError('').message).toBe('unknown error')
  })
})

describe('call', () => {
  it('resolves with the transport result', async () => {
    const t = installFakeTransport().on('PlatformService.LookupIP', (d: string) => `1.2.3.4 for ${d}`)
    await expect(call('PlatformService', 'LookupIP', 'a.example')).resolves.toBe('1.2.3.4 for a.example')
    expect(t.callsOf('PlatformService.LookupIP')).toEqual([['a.example']])
  })

  it('rejects with an AppError whatever the transport threw', async () => {
    installFakeTransport().on('PlatformService.Delete', () => {
      throw goError('conflict', 'the platform is used by sync 2')
    })
    const err = await PlatformService.Delete(1).catch((e) => e)
    expect(err).toBeInstanceOf(AppError)
    expect(err).toMatchObject({ code: 'conflict', message: 'the platform is used by sync 2' })
  })

  it('normalises null lists from Go', async () => {
    installFakeTransport()
      .on('PlatformService.List', () => null)
      .on('SyncService.Models', () => [{ name: 'users', columns: null, unique: null }])
      .on('SyncService.Compatibility', () => ({ missing_on_target: null, extra_on_target: null, type_differences: null, key_field: null }))
      .on('FleetService.Overview', () => [{ platform_id: 1, name: 'a', syncs: null }])
      .on('FleetService.SyncPlatforms', () => null)
    expect(await PlatformService.List()).toEqual([])
    expect(await SyncService.Models(1)).toEqual([{ name: 'users', columns: [], unique: [] }])
    expect(await SyncService.Compatibility(1, 'a', 2, 'b')).toEqual({ missing_on_target: [], extra_on_target: [], type_differences: [], key_field: null })
    expect((await FleetService.Overview())[0].syncs).toEqual([])
    expect(await FleetService.SyncPlatforms()).toEqual({ revision: 0, results: [] })
  })
})
