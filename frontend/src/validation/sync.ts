// Validation of the sync form and the Moox title rule. Pure, so the tests call it directly.
import type { IfExists, SyncInput } from '@/api/types'
import type { FieldErrors } from './errors'

export type SyncField =
  | 'source_platform_id'
  | 'source_model'
  | 'target_platform_id'
  | 'target_model'
  | 'field_mappings'
  | 'interval'
  | 'if_exists'
  | 'use_transformer_class'
  | 'transformer_config'

/** One row of the field-mapping editor: source field -> target field. */
export interface MappingRow {
  source: string
  target: string
}

export const IF_EXISTS: readonly IfExists[] = ['update', 'skip', 'error']

interface TitlePlatform {
  domain: string
}

/**
 * The title as Moox generates it:
 * `${source.domain} (${source_model}) to ${target.domain} (${target_model})[ by platform]`.
 */
export function syncTitle(
  source: TitlePlatform | null | undefined,
  sourceModel: string,
  target: TitlePlatform | null | undefined,
  targetModel: string,
  byPlatform: boolean,
): string {
  const title = `${source?.domain ?? '?'} (${sourceModel || '?'}) to ${target?.domain ?? '?'} (${targetModel || '?'})`
  return byPlatform ? `${title} by platform` : title
}

export interface SyncValidationOptions {
  /** The mapping editor's rows; when absent, field_mappings is checked instead. */
  mappingRows?: MappingRow[]
  /** Column names of the chosen models, when loaded; unknown names are then refused. */
  sourceColumns?: string[] | null
  targetColumns?: string[] | null
  /** The transformer config as the admin typed it; when given it is parsed and checked. */
  transformerConfigText?: string
}

/** The built-in transformer configured by JSON alone (docs/transformers-and-handlers.md). */
export const DECLARATIVE = 'declarative'
const DECLARATIVE_KEYS = ['drop', 'map_values', 'rename', 'set', 'delay']
/** A Go duration: "30s", "1m30s", "250ms". */
const DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/

/** An example config of the declarative transformer, for the editor's placeholder. */
export const DECLARATIVE_EXAMPLE = `{
  "drop": ["password"],
  "rename": {"email": "user_email"},
  "set": {"source": "shop"},
  "map_values": {"status": {"values": {"active": 1}, "default": 0}},
  "delay": "30s"
}`

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Parses the transformer config editor's text: empty is no config (null); anything else
 * must be a JSON object. The error is an i18n key.
 */
export function parseTransformerConfig(text: string): { value: Record<string, unknown> | null; error: string | null } {
  if (!text.trim()) return { value: null, error: null }
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return { value: null, error: 'validation.transformer_config_json' }
  }
  if (v === null) return { value: null, error: null }
  if (!isObject(v)) return { value: null, error: 'validation.transformer_config_object' }
  return { value: v, error: null }
}

/** Checks a declarative transformer config the way the agent does, roughly; an i18n key. */
export function declarativeProblem(cfg: Record<string, unknown> | null | undefined): string | null {
  if (!cfg) return 'validation.declarative_required'
  for (const [k, v] of Object.entries(cfg)) {
    switch (k) {
      case 'drop':
        if (!Array.isArray(v) || !v.every((f) => typeof f === 'string' && f !== '')) return 'validation.declarative_drop'
        break
      case 'rename':
        if (!isObject(v) || !Object.entries(v).every(([a, b]) => a !== '' && typeof b === 'string' && b !== '')) return 'validation.declarative_rename'
        break
      case 'set':
        if (!isObject(v) || Object.keys(v).some((f) => f === '')) return 'validation.declarative_set'
        break
      case 'map_values':
        if (
          !isObject(v) ||
          !Object.values(v).every((m) => isObject(m) && isObject(m.values) && Object.keys(m).every((x) => x === 'values' || x === 'default'))
        )
          return 'validation.declarative_map_values'
        break
      case 'delay':
        if (typeof v !== 'string' || !DURATION.test(v)) return 'validation.declarative_delay'
        break
      default:
        return 'validation.declarative_unknown'
    }
  }
  return null
}

/** The keys a declarative config may have, for messages. */
export const DECLARATIVE_OPERATIONS = DECLARATIVE_KEYS.join(', ')

export function isSamePlatformAndModel(s: Pick<SyncInput, 'source_platform_id' | 'source_model' | 'target_platform_id' | 'target_model'>): boolean {
  return (
    s.source_platform_id > 0 &&
    s.source_platform_id === s.target_platform_id &&
    s.source_model !== '' &&
    s.source_model === s.target_model
  )
}

export function validateSync(s: SyncInput, opts: SyncValidationOptions = {}): FieldErrors<SyncField> {
  const e: FieldErrors<SyncField> = {}
  if (!(s.source_platform_id > 0)) e.source_platform_id = 'validation.required'
  if (!s.source_model) e.source_model = 'validation.required'
  if (!(s.target_platform_id > 0)) e.target_platform_id = 'validation.required'
  if (!s.target_model) e.target_model = 'validation.required'
  if (isSamePlatformAndModel(s)) e.target_model = 'validation.same_platform_model'

  if (!IF_EXISTS.includes(s.if_exists)) e.if_exists = 'validation.required'
  if (!Number.isInteger(s.interval) || s.interval < 1) e.interval = 'validation.interval'

  if (!s.sync_all_fields) {
    const rows = opts.mappingRows ?? mappingsToRows(s.field_mappings)
    const problem = mappingProblem(rows, opts.sourceColumns, opts.targetColumns)
    if (problem) e.field_mappings = problem
  }

  let config = s.transformer_config ?? null
  if (opts.transformerConfigText !== undefined) {
    const parsed = parseTransformerConfig(opts.transformerConfigText)
    if (parsed.error) e.transformer_config = parsed.error
    config = parsed.value
  }
  if (!e.transformer_config) {
    if (config && !s.use_transformer_class) e.transformer_config = 'validation.transformer_config_without_transformer'
    else if (s.use_transformer_class === DECLARATIVE) {
      const problem = declarativeProblem(config)
      if (problem) e.transformer_config = problem
    }
  }
  return e
}

/** The transformer config as the editor shows it: indented JSON, or empty. */
export function transformerConfigText(cfg: Record<string, unknown> | null | undefined): string {
  return cfg ? JSON.stringify(cfg, null, 2) : ''
}

function mappingProblem(rows: MappingRow[], sourceColumns?: string[] | null, targetColumns?: string[] | null): string | null {
  if (rows.length === 0) return 'validation.mappings_required'
  const sources = new Set<string>()
  const targets = new Set<string>()
  for (const r of rows) {
    if (!r.source || !r.target) return 'validation.mapping_incomplete'
    if (sources.has(r.source)) return 'validation.mapping_duplicate_source'
    if (targets.has(r.target)) return 'validation.mapping_duplicate_target'
    sources.add(r.source)
    targets.add(r.target)
    if (sourceColumns && !sourceColumns.includes(r.source)) return 'validation.mapping_unknown_column'
    if (targetColumns && !targetColumns.includes(r.target)) return 'validation.mapping_unknown_column'
  }
  return null
}

export function mappingsToRows(m: Record<string, string> | null | undefined): MappingRow[] {
  return Object.entries(m ?? {}).map(([source, target]) => ({ source, target }))
}

export function rowsToMappings(rows: MappingRow[]): Record<string, string> {
  const m: Record<string, string> = {}
  for (const r of rows) if (r.source && r.target) m[r.source] = r.target
  return m
}

/** Rows mapping every source column to the target column of the same name. */
export function autoMapRows(sourceColumns: string[], targetColumns: string[]): MappingRow[] {
  const targets = new Set(targetColumns)
  return sourceColumns.filter((c) => targets.has(c)).map((c) => ({ source: c, target: c }))
}

export function emptySyncInput(): SyncInput {
  return {
    id: 0,
    status: true,
    title: '',
    source_platform_id: 0,
    source_model: '',
    target_platform_id: 0,
    target_model: '',
    use_platform_relations: false,
    if_exists: 'update',
    sync_ids: null,
    sync_all_fields: true,
    field_mappings: null,
    use_transformer_class: null,
    transformer_config: null,
    interval: 60,
  }
}

export function toSyncInput(s: SyncInput): SyncInput {
  return {
    id: s.id,
    status: s.status,
    title: s.title,
    source_platform_id: s.source_platform_id,
    source_model: s.source_model,
    target_platform_id: s.target_platform_id,
    target_model: s.target_model,
    use_platform_relations: s.use_platform_relations,
    if_exists: s.if_exists,
    sync_ids: s.sync_ids ? [...s.sync_ids] : null,
    sync_all_fields: s.sync_all_fields,
    field_mappings: s.field_mappings ? { ...s.field_mappings } : null,
    use_transformer_class: s.use_transformer_class,
    transformer_config: s.transformer_config ? (JSON.parse(JSON.stringify(s.transformer_config)) as Record<string, unknown>) : null,
    interval: s.interval,
  }
}
