import { describe, expect, it } from 'vitest'
import type { SyncInput } from '@/api/types'
import {
  autoMapRows,
  declarativeProblem,
  emptySyncInput,
  isSamePlatformAndModel,
  mappingsToRows,
  parseTransformerConfig,
  rowsToMappings,
  syncTitle,
  validateSync,
} from '@/validation/sync'

function valid(over: Partial<SyncInput> = {}): SyncInput {
  return { ...emptySyncInput(), source_platform_id: 1, source_model: 'users', target_platform_id: 2, target_model: 'users', ...over }
}

describe('syncTitle', () => {
  const shop = { domain: 'shop.example.com' }
  const blog = { domain: 'blog.example.com' }

  it('is generated as Moox does', () => {
    expect(syncTitle(shop, 'users', blog, 'authors', false)).toBe('shop.example.com (users) to blog.example.com (authors)')
  })
  it('appends " by platform" with platform relations', () => {
    expect(syncTitle(shop, 'posts', blog, 'posts', true)).toBe('shop.example.com (posts) to blog.example.com (posts) by platform')
  })
  it('shows placeholders for what is not chosen yet', () => {
    expect(syncTitle(undefined, '', blog, '', false)).toBe('? (?) to blog.example.com (?)')
  })
})

describe('validateSync', () => {
  it('accepts a complete sync of all fields', () => {
    expect(validateSync(valid())).toEqual({})
  })

  it('requires both platforms and models', () => {
    const e = validateSync(emptySyncInput())
    expect(e).toMatchObject({
      source_platform_id: 'validation.required',
      source_model: 'validation.required',
      target_platform_id: 'validation.required',
      target_model: 'validation.required',
    })
  })

  it('refuses the same model on the same platform', () => {
    const s = valid({ target_platform_id: 1 })
    expect(isSamePlatformAndModel(s)).toBe(true)
    expect(validateSync(s).target_model).toBe('validation.same_platform_model')
  })

  it('allows the same platform with another model, and the same model on another platform', () => {
    expect(validateSync(valid({ target_platform_id: 1, target_model: 'members' }))).toEqual({})
    expect(validateSync(valid({ target_platform_id: 2, target_model: 'users' }))).toEqual({})
  })

  describe('interval', () => {
    it.each([0, -5, 1.5, Number.NaN])('refuses %s', (interval) => {
      expect(validateSync(valid({ interval })).interval).toBe('validation.interval')
    })
    it.each([1, 60, 1440])('accepts %s', (interval) => {
      expect(validateSync(valid({ interval })).interval).toBeUndefined()
    })
  })

  describe('field mappings', () => {
    it('are required when not all fields sync', () => {
      expect(validateSync(valid({ sync_all_fields: false, field_mappings: null })).field_mappings).toBe('validation.mappings_required')
      expect(validateSync(valid({ sync_all_fields: false, field_mappings: {} })).field_mappings).toBe('validation.mappings_required')
      expect(validateSync(valid({ sync_all_fields: false }), { mappingRows: [] }).field_mappings).toBe('validation.mappings_required')
    })
    it('are not needed when all fields sync', () => {
      expect(validateSync(valid({ sync_all_fields: true, field_mappings: null })).field_mappings).toBeUndefined()
    })
    it('accept complete rows', () => {
      expect(validateSync(valid({ sync_all_fields: false, field_mappings: { email: 'mail' } })).field_mappings).toBeUndefined()
    })
    it.each([
      [[{ source: 'email', target: '' }], 'validation.mapping_incomplete'],
      [[{ source: '', target: 'mail' }], 'validation.mapping_incomplete'],
      [
        [
          { source: 'email', target: 'a' },
          { source: 'email', target: 'b' },
        ],
        'validation.mapping_duplicate_source',
      ],
      [
        [
          { source: 'a', target: 'mail' },
          { source: 'b', target: 'mail' },
        ],
        'validation.mapping_duplicate_target',
      ],
    ])('refuse bad rows %j', (rows, key) => {
      expect(validateSync(valid({ sync_all_fields: false }), { mappingRows: rows }).field_mappings).toBe(key)
    })
    it('refuse columns the models do not have, once the columns are known', () => {
      const rows = [{ source: 'email', target: 'mail' }]
      expect(validateSync(valid({ sync_all_fields: false }), { mappingRows: rows, sourceColumns: ['email'], targetColumns: ['email'] }).field_mappings).toBe(
        'validation.mapping_unknown_column',
      )
      expect(validateSync(valid({ sync_all_fields: false }), { mappingRows: rows, sourceColumns: null, targetColumns: null }).field_mappings).toBeUndefined()
    })
  })
})

describe('mapping rows', () => {
  it('round-trip to the wire record', () => {
    const rows = [
      { source: 'a', target: 'b' },
      { source: 'c', target: '' },
    ]
    expect(rowsToMappings(rows)).toEqual({ a: 'b' })
    expect(mappingsToRows({ a: 'b' })).toEqual([{ source: 'a', target: 'b' }])
    expect(mappingsToRows(null)).toEqual([])
  })
  it('auto-map columns of the same name', () => {
    expect(autoMapRows(['id', 'name', 'email'], ['email', 'name', 'bio'])).toEqual([
      { source: 'name', target: 'name' },
      { source: 'email', target: 'email' },
    ])
  })
})

describe('transformer config', () => {
  it('parses the editor text: empty or null is none, anything but an object is refused', () => {
    expect(parseTransformerConfig('  ')).toEqual({ value: null, error: null })
    expect(parseTransformerConfig('null')).toEqual({ value: null, error: null })
    expect(parseTransformerConfig('{"a": 1}')).toEqual({ value: { a: 1 }, error: null })
    expect(parseTransformerConfig('[1]').error).toBe('validation.transformer_config_object')
    expect(parseTransformerConfig('{"a":').error).toBe('validation.transformer_config_json')
  })

  it('checks a declarative config as the agent does', () => {
    expect(declarativeProblem(null)).toBe('validation.declarative_required')
    expect(declarativeProblem({ drop: ['a'], rename: { b: 'c' }, set: { d: null }, map_values: { e: { values: { x: 1 }, default: 0 } }, delay: '1m30s' })).toBeNull()
    expect(declarativeProblem({ drop: 'a' })).toBe('validation.declarative_drop')
    expect(declarativeProblem({ rename: { a: 1 } })).toBe('validation.declarative_rename')
    expect(declarativeProblem({ set: [] })).toBe('validation.declarative_set')
    expect(declarativeProblem({ map_values: { e: { x: 1 } } })).toBe('validation.declarative_map_values')
    expect(declarativeProblem({ delay: 'soon' })).toBe('validation.declarative_delay')
    expect(declarativeProblem({ copy: ['a'] })).toBe('validation.declarative_unknown')
  })

  it('validates the config with the sync', () => {
    const base = { ...emptySyncInput(), source_platform_id: 1, source_model: 'a', target_platform_id: 2, target_model: 'b' }
    expect(validateSync({ ...base, transformer_config: { drop: ['x'] } }).transformer_config).toBe('validation.transformer_config_without_transformer')
    expect(validateSync({ ...base, use_transformer_class: 'declarative' }).transformer_config).toBe('validation.declarative_required')
    expect(validateSync({ ...base, use_transformer_class: 'lowercase_email' }).transformer_config).toBeUndefined()
    expect(validateSync({ ...base, use_transformer_class: 'declarative' }, { transformerConfigText: '{"set": {"a": 1}}' }).transformer_config).toBeUndefined()
    expect(validateSync({ ...base, use_transformer_class: 'x' }, { transformerConfigText: '{' }).transformer_config).toBe('validation.transformer_config_json')
  })
})
