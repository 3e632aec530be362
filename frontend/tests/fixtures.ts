// Builders of wire objects with sensible defaults.
import type { AgentView, Platform, Sync } from '@/api/types'

const T = '2024-05-01T10:00:00Z'

export function makePlatform(over: Partial<Platform> = {}): Platform {
  const id = over.id ?? 1
  return {
    id,
    name: `Platform ${id}`,
    domain: `p${id}.example.com`,
    ip_address: null,
    thumbnail: null,
    master: false,
    locked: false,
    lock_reason: null,
    show_in_menu: true,
    order: id,
    read_only: false,
    agent_url: `https://p${id}.example.com:7443`,
    tls_fingerprint: null,
    pending_fingerprint: null,
    enrolled_at: null,
    acked_revision: 0,
    created_at: T,
    updated_at: T,
    ...over,
  }
}

export function makeSync(over: Partial<Sync> = {}): Sync {
  return {
    id: 1,
    status: true,
    title: 'p1.example.com (users) to p2.example.com (users)',
    source_platform_id: 1,
    source_model: 'users',
    target_platform_id: 2,
    target_model: 'users',
    use_platform_relations: false,
    if_exists: 'update',
    sync_ids: null,
    sync_all_fields: true,
    field_mappings: null,
    use_transformer_class: null,
    interval: 60,
    has_errors: false,
    error_message: null,
    last_sync: null,
    created_at: T,
    updated_at: T,
    ...over,
  }
}

export function makeAgent(over: Partial<AgentView> = {}): AgentView {
  const id = over.platform_id ?? 1
  return {
    platform_id: id,
    name: `Platform ${id}`,
    domain: `p${id}.example.com`,
    agent_url: `https://p${id}.example.com:7443`,
    online: true,
    enrolled: true,
    version: '0.1.0',
    revision: 3,
    desired_revision: 3,
    last_seen: T,
    error: null,
    syncs: [],
    ...over,
  }
}
