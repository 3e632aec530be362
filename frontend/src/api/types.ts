// Wire types of the bound services, snake_case exactly as the Go side encodes them.
// Timestamps are RFC 3339 strings. Go nil slices arrive as null; the service wrappers in
// services.ts turn list results into arrays.

export interface Platform {
  id: number
  name: string
  domain: string
  ip_address: string | null
  thumbnail: string | null
  master: boolean
  locked: boolean
  lock_reason: string | null
  show_in_menu: boolean
  order: number
  read_only: boolean
  agent_url: string
  tls_fingerprint: string | null
  pending_fingerprint: string | null
  enrolled_at: string | null
  acked_revision: number
  created_at: string
  updated_at: string
}

/** The editable fields of a Platform; id 0 creates a new one. */
export type PlatformInput = Pick<
  Platform,
  | 'id'
  | 'name'
  | 'domain'
  | 'ip_address'
  | 'thumbnail'
  | 'master'
  | 'locked'
  | 'lock_reason'
  | 'show_in_menu'
  | 'order'
  | 'read_only'
  | 'agent_url'
>

export type IfExists = 'update' | 'skip' | 'error'

export interface Sync {
  id: number
  status: boolean
  title: string
  source_platform_id: number
  source_model: string
  target_platform_id: number
  target_model: string
  use_platform_relations: boolean
  if_exists: IfExists
  sync_ids: string[] | null
  sync_all_fields: boolean
  field_mappings: Record<string, string> | null
  use_transformer_class: string | null
  /** The JSON object handed to the transformer; absent or null when it takes none. */
  transformer_config?: Record<string, unknown> | null
  interval: number
  has_errors: boolean
  error_message: string | null
  last_sync: string | null
  created_at: string
  updated_at: string
}

/** The editable fields of a Sync; id 0 creates a new one. */
export type SyncInput = Pick<
  Sync,
  | 'id'
  | 'status'
  | 'title'
  | 'source_platform_id'
  | 'source_model'
  | 'target_platform_id'
  | 'target_model'
  | 'use_platform_relations'
  | 'if_exists'
  | 'sync_ids'
  | 'sync_all_fields'
  | 'field_mappings'
  | 'use_transformer_class'
  | 'transformer_config'
  | 'interval'
>

/** The transformers and sync handlers registered on a platform's agent, sorted. */
export interface Capabilities {
  transformers: string[]
  handlers: string[]
}

export interface Column {
  name: string
  type: string
  nullable: boolean
  primary_key: boolean
}

export interface Model {
  name: string
  columns: Column[]
  unique: string[][]
}

export interface TypeDifference {
  column: string
  source_type: string
  target_type: string
}

export interface CompatReport {
  missing_on_target: string[]
  extra_on_target: string[]
  type_differences: TypeDifference[]
  key_field: string | null
}

export interface ProbeResult {
  fingerprint: string
  version: string
  enrolled: boolean
  platform_id: number | null
}

export interface SyncStatus {
  id: number
  role: 'source' | 'target'
  status: boolean
  last_sync: string | null
  pending: number
  sent: number
  applied: number
  failed: number
  lag_ms: number
  has_errors: boolean
  error_message: string | null
}

export interface AgentView {
  platform_id: number
  name: string
  domain: string
  agent_url: string
  online: boolean
  enrolled: boolean
  version: string
  revision: number
  desired_revision: number
  last_seen: string | null
  error: string | null
  syncs: SyncStatus[]
}

export type PushOutcome = 'ok' | 'failed' | 'unreachable'

export interface PushResult {
  platform_id: number
  name: string
  result: PushOutcome
  code: string | null
  message: string | null
  duration_ms: number
}

export interface SyncReport {
  revision: number
  results: PushResult[]
}

export type ProgressPhase = 'enroll' | 'push' | 'done'

export interface Progress {
  platform_id: number
  name: string
  phase: ProgressPhase
  done: number
  total: number
  result: PushResult | null
}

export interface ActivityEntry {
  id: number
  at: string
  kind: 'push' | 'agent_error'
  platform_id: number
  platform_name: string
  result: string
  code: string | null
  message: string | null
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
export type ThemeMode = 'light' | 'dark' | 'auto'
export type Language = 'en' | 'de'

export interface Settings {
  log_level: LogLevel
  theme: ThemeMode
  language: Language
  has_sync_token: boolean
  secrets_backend: 'keyring' | 'file'
  secrets_warning: string | null
}
