// A stand-in for the Go web mode, for working on the UI without the Go side:
// `npm run dev:mock` serves the app with POST /rpc/<Service>.<Method> and GET /events
// (Server-Sent Events) backed by an in-memory fleet. It follows the transport contract in
// src/api/ (session header, error shape, event envelope); the Go side is the reference.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Plugin } from 'vite'
import type {
  ActivityEntry,
  AgentView,
  Model,
  Platform,
  PlatformInput,
  Settings,
  Sync,
  SyncInput,
  SyncReport,
} from '../src/api/types'

class RpcError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message)
  }
}

const now = () => new Date().toISOString()
const token = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function platform(id: number, name: string, domain: string, extra: Partial<Platform> = {}): Platform {
  return {
    id,
    name,
    domain,
    ip_address: `10.0.0.${id}`,
    thumbnail: null,
    master: false,
    locked: false,
    lock_reason: null,
    show_in_menu: true,
    order: id,
    read_only: false,
    agent_url: `https://${domain}:7443`,
    tls_fingerprint: `sha256:${'ab'.repeat(31)}${String(id).padStart(2, '0')}`,
    pending_fingerprint: null,
    enrolled_at: now(),
    acked_revision: 7,
    created_at: now(),
    updated_at: now(),
    ...extra,
  }
}

function createState() {
  const platforms: Platform[] = [
    platform(1, 'Headquarters', 'hq.example.com', { master: true }),
    platform(2, 'Shop', 'shop.example.com'),
    platform(3, 'Blog', 'blog.example.com'),
    platform(4, 'Legacy CRM', 'crm.example.net', { locked: true, lock_reason: 'Migration until Friday', enrolled_at: null, tls_fingerprint: null }),
  ]
  const cols = (names: string[]) => names.map((n, i) => ({ name: n, type: n.endsWith('_at') ? 'timestamp' : n === 'id' ? 'integer' : 'varchar(255)', nullable: i > 1, primary_key: n === 'id' }))
  const models: Record<number, Model[]> = {
    1: [
      { name: 'users', columns: cols(['id', 'uuid', 'name', 'email', 'role', 'created_at', 'updated_at']), unique: [['uuid'], ['email']] },
      { name: 'products', columns: cols(['id', 'slug', 'title', 'price', 'stock', 'updated_at']), unique: [['slug']] },
    ],
    2: [
      { name: 'users', columns: cols(['id', 'uuid', 'name', 'email', 'updated_at']), unique: [['uuid']] },
      { name: 'products', columns: cols(['id', 'slug', 'title', 'price', 'updated_at', 'featured']), unique: [['slug']] },
    ],
    3: [{ name: 'authors', columns: cols(['id', 'uuid', 'name', 'bio']), unique: [['uuid']] }],
  }
  const syncs: Sync[] = [
    {
      id: 1,
      status: true,
      title: 'hq.example.com (users) to shop.example.com (users)',
      source_platform_id: 1,
      source_model: 'users',
      target_platform_id: 2,
      target_model: 'users',
      use_platform_relations: false,
      if_exists: 'update',
      sync_ids: null,
      sync_all_fields: false,
      field_mappings: { uuid: 'uuid', name: 'name', email: 'email' },
      use_transformer_class: null,
      interval: 60,
      has_errors: false,
      error_message: null,
      last_sync: now(),
      created_at: now(),
      updated_at: now(),
    },
    {
      id: 2,
      status: true,
      title: 'hq.example.com (products) to shop.example.com (products) by platform',
      source_platform_id: 1,
      source_model: 'products',
      target_platform_id: 2,
      target_model: 'products',
      use_platform_relations: true,
      if_exists: 'update',
      sync_ids: null,
      sync_all_fields: true,
      field_mappings: null,
      use_transformer_class: null,
      interval: 15,
      has_errors: true,
      error_message: 'unknown_column: stock does not exist on the target',
      last_sync: now(),
      created_at: now(),
      updated_at: now(),
    },
  ]
  const tokens = new Map<number, string>([
    [1, token()],
    [2, token()],
    [3, token()],
  ])
  const activity: ActivityEntry[] = [
    { id: 2, at: now(), kind: 'agent_error', platform_id: 4, platform_name: 'Legacy CRM', result: 'unreachable', code: 'unreachable', message: 'dial tcp 10.0.0.4:7443: connect: connection refused' },
    { id: 1, at: new Date(Date.now() - 3600_000).toISOString(), kind: 'push', platform_id: 2, platform_name: 'Shop', result: 'ok', code: null, message: null },
  ]
  const settings: Settings = {
    log_level: 'info',
    theme: 'auto',
    language: 'en',
    has_sync_token: true,
    secrets_backend: 'keyring',
    secrets_warning: null,
  }
  return { platforms, models, syncs, tokens, activity, settings, revision: 7, nextId: 10 }
}

type State = ReturnType<typeof createState>

function agents(s: State): AgentView[] {
  return s.platforms.map((p) => ({
    platform_id: p.id,
    name: p.name,
    domain: p.domain,
    agent_url: p.agent_url,
    online: p.id !== 4,
    enrolled: p.enrolled_at !== null,
    version: p.id !== 4 ? '0.1.0' : '',
    revision: p.id === 4 ? 0 : p.acked_revision,
    desired_revision: s.revision,
    last_seen: p.id !== 4 ? now() : null,
    error: p.id === 4 ? 'connection refused' : null,
    syncs: s.syncs
      .filter((y) => y.source_platform_id === p.id || y.target_platform_id === p.id)
      .map((y) => ({
        id: y.id,
        role: y.source_platform_id === p.id ? ('source' as const) : ('target' as const),
        status: y.status,
        last_sync: y.last_sync,
        pending: y.id * 3,
        sent: 1200 * y.id,
        applied: 1190 * y.id,
        failed: y.has_errors ? 4 : 0,
        lag_ms: y.id * 850,
        has_errors: y.has_errors,
        error_message: y.error_message,
      })),
  }))
}

function validationError(field: string, message: string): never {
  throw new RpcError(400, 'validation', message, field)
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = ''
    req.on('data', (c) => (data += c))
    req.on('end', () => resolve(data))
    req.on('error', reject)
  })
}

export function mockBackend(): Plugin {
  const state = createState()
  const clients = new Set<ServerResponse>()
  const emit = (name: string, data: unknown) => {
    for (const c of clients) c.write(`data: ${JSON.stringify({ name, data })}\n\n`)
  }
  let cancel = false
  /** Platform relations of records, by "platform/model/key". */
  const relations = new Map<string, number[]>()
  const snippet = (id: number, syncToken: string) => {
    const p = state.platforms.find((x) => x.id === id)
    if (!p) throw new RpcError(404, 'not_found', 'no such platform')
    return `SYNC_TOKEN='${syncToken}' mooxsync-agent serve \\\n  --listen :7443 --state-dir /var/lib/mooxsync  # ${p.domain}`
  }

  const methods: Record<string, (...args: never[]) => unknown> = {
    'PlatformService.List': () => state.platforms,
    'PlatformService.Save': (p: PlatformInput) => {
      if (!p.name?.trim()) validationError('name', 'name is required')
      if (state.platforms.some((x) => x.domain === p.domain && x.id !== p.id)) validationError('domain', 'another platform has this domain')
      const existing = state.platforms.find((x) => x.id === p.id)
      if (existing) {
        Object.assign(existing, p, { updated_at: now() })
        return existing
      }
      const created = platform(state.nextId++, p.name, p.domain, { ...p, enrolled_at: null, tls_fingerprint: null, acked_revision: 0 })
      created.id = state.nextId - 1
      state.platforms.push(created)
      return created
    },
    'PlatformService.Delete': (id: number) => {
      if (state.syncs.some((s) => s.source_platform_id === id || s.target_platform_id === id)) {
        throw new RpcError(409, 'in_use', 'the platform is used by a sync; delete the sync first')
      }
      state.platforms = state.platforms.filter((p) => p.id !== id)
      return null
    },
    'PlatformService.GenerateToken': () => token(),
    'PlatformService.SetToken': (id: number, t: string) => void state.tokens.set(id, t),
    'PlatformService.HasToken': (id: number) => state.tokens.has(id),
    'PlatformService.RevealToken': (id: number) => {
      const t = state.tokens.get(id)
      if (!t) throw new RpcError(404, 'not_found', 'no token stored for this platform')
      return t
    },
    'PlatformService.RotateToken': (id: number) => void state.tokens.set(id, token()),
    'PlatformService.LookupIP': async (domain: string) => {
      await sleep(300)
      if (domain.endsWith('.invalid')) throw new RpcError(422, 'lookup_failed', `no such host: ${domain}`)
      return `203.0.113.${domain.length % 250}`
    },
    'PlatformService.Probe': async (url: string) => {
      await sleep(400)
      if (url.includes('down')) throw new RpcError(502, 'unreachable', `dial ${url}: connection refused`)
      return { fingerprint: `sha256:${'cd'.repeat(32)}`, version: '0.1.0', enrolled: false, platform_id: null }
    },
    'PlatformService.AcceptFingerprint': (id: number, fp: string) => {
      const p = state.platforms.find((x) => x.id === id)
      if (p) Object.assign(p, { tls_fingerprint: fp, pending_fingerprint: null })
    },
    'SyncService.List': (source: number, target: number) =>
      state.syncs.filter((s) => (!source || s.source_platform_id === source) && (!target || s.target_platform_id === target)),
    'SyncService.Save': (s: SyncInput) => {
      if (s.source_platform_id === s.target_platform_id && s.source_model === s.target_model) {
        validationError('target_model', 'source and target are the same model on the same platform')
      }
      const existing = state.syncs.find((x) => x.id === s.id)
      if (existing) return Object.assign(existing, s, { updated_at: now() })
      const created: Sync = { ...s, id: state.nextId++, has_errors: false, error_message: null, last_sync: null, created_at: now(), updated_at: now() }
      state.syncs.push(created)
      return created
    },
    'SyncService.Delete': (id: number) => void (state.syncs = state.syncs.filter((s) => s.id !== id)),
    'SyncService.Models': async (id: number) => {
      await sleep(350)
      if (!state.models[id]) throw new RpcError(502, 'unreachable', 'the agent did not answer within 10s')
      return state.models[id]
    },
    'SyncService.Compatibility': (sp: number, sm: string, tp: number, tm: string) => {
      const src = state.models[sp]?.find((m) => m.name === sm)
      const dst = state.models[tp]?.find((m) => m.name === tm)
      if (!src || !dst) throw new RpcError(422, 'unknown_model', 'model not found')
      const sc = new Map(src.columns.map((c) => [c.name, c.type]))
      const tc = new Map(dst.columns.map((c) => [c.name, c.type]))
      const key = ['ulid', 'uuid', 'slug', 'name', 'title'].find((k) => sc.has(k) && tc.has(k)) ?? null
      return {
        missing_on_target: [...sc.keys()].filter((c) => !tc.has(c)),
        extra_on_target: [...tc.keys()].filter((c) => !sc.has(c)),
        type_differences: [...sc].filter(([c, ty]) => tc.has(c) && tc.get(c) !== ty).map(([c, ty]) => ({ column: c, source_type: ty, target_type: tc.get(c)! })),
        key_field: key,
      }
    },
    'SyncService.Reconcile': async (id: number, dry: boolean) => {
      await sleep(500)
      return `${dry ? 'dry run: ' : ''}sync ${id}: 3 ranges differ, 12 rows ${dry ? 'would be' : ''} repaired, 0 deleted`
    },
    'SyncService.Capabilities': async (id: number) => {
      await sleep(200)
      if (!state.models[id]) throw new RpcError(502, 'unreachable', 'the agent did not answer within 10s')
      return { transformers: ['declarative', 'lowercase_email', 'meta', 'wp_user'], handlers: ['meta', 'wp_user'] }
    },
    'SyncService.Relations': async (id: number, model: string, key: string) => {
      await sleep(200)
      if (!state.models[id]?.some((m) => m.name === model)) throw new RpcError(422, 'unknown_model', `unknown model "${model}"`)
      return relations.get(`${id}/${model}/${key}`) ?? []
    },
    'SyncService.SetRelations': async (id: number, model: string, key: string, ids: number[]) => {
      await sleep(200)
      relations.set(`${id}/${model}/${key}`, [...ids].sort((a, b) => a - b))
      return relations.get(`${id}/${model}/${key}`)
    },
    'FleetService.Overview': () => agents(state),
    'FleetService.SyncPlatforms': async () => {
      cancel = false
      state.revision++
      const list = state.platforms
      const results: SyncReport['results'] = []
      for (const [i, p] of list.entries()) {
        if (cancel) {
          // As the Go side does: the report holds the results so far, the rest canceled.
          results.push({ platform_id: p.id, name: p.name, result: 'failed', code: 'canceled', message: 'canceled', duration_ms: 0 })
          continue
        }
        emit('sync-platforms:progress', { platform_id: p.id, name: p.name, phase: p.enrolled_at ? 'push' : 'enroll', done: i, total: list.length, result: null })
        await sleep(600)
        const result =
          p.id === 4
            ? { platform_id: p.id, name: p.name, result: 'unreachable' as const, code: 'unreachable', message: 'connection refused', duration_ms: 600 }
            : { platform_id: p.id, name: p.name, result: 'ok' as const, code: null, message: null, duration_ms: 600 }
        if (result.result === 'ok') p.acked_revision = state.revision
        results.push(result)
        state.activity.unshift({ id: state.nextId++, at: now(), kind: 'push', platform_id: p.id, platform_name: p.name, result: result.result, code: result.code, message: result.message })
        emit('sync-platforms:progress', { platform_id: p.id, name: p.name, phase: 'done', done: i + 1, total: list.length, result })
      }
      const report = { revision: state.revision, results }
      emit('sync-platforms:done', report)
      emit('fleet:status', agents(state))
      return report
    },
    'FleetService.CancelSyncPlatforms': () => void (cancel = true),
    'ActivityService.List': (limit: number) => state.activity.slice(0, limit),
    'SettingsService.Get': () => state.settings,
    'SettingsService.Save': (s: Settings) => Object.assign(state.settings, { log_level: s.log_level, theme: s.theme, language: s.language }),
    'SettingsService.GenerateSyncToken': () => void (state.settings.has_sync_token = true),
    'SettingsService.RotateSyncToken': () => undefined,
    'SettingsService.AgentSnippet': (id: number) => snippet(id, '<sync token>'),
    'SettingsService.AgentSnippetWithToken': (id: number) => snippet(id, 'dGhpcy1pcy1hLW1vY2stc3luYy10b2tlbi0xMjM0NTY'),
  }

  return {
    name: 'mooxsync-mock-backend',
    configureServer(server) {
      server.middlewares.use('/events', (req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' })
        res.write(': connected\n\n')
        clients.add(res)
        req.on('close', () => clients.delete(res))
      })
      server.middlewares.use('/rpc/', async (req, res) => {
        const name = (req.url ?? '').replace(/^\//, '').split('?')[0]
        const send = (status: number, body: unknown) => {
          res.writeHead(status, { 'Content-Type': 'application/json' })
          res.end(body === undefined ? 'null' : JSON.stringify(body))
        }
        try {
          if (req.method !== 'POST') throw new RpcError(405, 'bad_request', 'POST only')
          const fn = methods[name]
          if (!fn) throw new RpcError(404, 'not_bound', `${name} is not a bound method`)
          const args = JSON.parse((await readBody(req)) || '[]') as never[]
          send(200, await fn(...args))
        } catch (e) {
          if (e instanceof RpcError) send(e.status, { code: e.code, message: e.message, ...(e.field ? { field: e.field } : {}) })
          else send(500, { code: 'internal', message: String(e) })
        }
      })
    },
  }
}
