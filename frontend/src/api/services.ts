// Typed wrappers of the bound Go services. Every method rejects with an AppError (call.ts).
// Lists are normalised to arrays because Go encodes a nil slice as null.
import { call } from './call'
import type {
  ActivityEntry,
  AgentView,
  Capabilities,
  CompatReport,
  Model,
  Platform,
  PlatformInput,
  ProbeResult,
  Settings,
  Sync,
  SyncInput,
  SyncReport,
} from './types'

const list = <T>(v: T[] | null | undefined): T[] => v ?? []

export const PlatformService = {
  List: async () => list(await call<Platform[] | null>('PlatformService', 'List')),
  Save: (p: PlatformInput) => call<Platform>('PlatformService', 'Save', p),
  Delete: (id: number) => call<void>('PlatformService', 'Delete', id),
  GenerateToken: () => call<string>('PlatformService', 'GenerateToken'),
  SetToken: (id: number, token: string) => call<void>('PlatformService', 'SetToken', id, token),
  HasToken: (id: number) => call<boolean>('PlatformService', 'HasToken', id),
  RevealToken: (id: number) => call<string>('PlatformService', 'RevealToken', id),
  RotateToken: (id: number) => call<void>('PlatformService', 'RotateToken', id),
  LookupIP: (domain: string) => call<string>('PlatformService', 'LookupIP', domain),
  Probe: (agentURL: string) => call<ProbeResult>('PlatformService', 'Probe', agentURL),
  AcceptFingerprint: (id: number, fingerprint: string) =>
    call<void>('PlatformService', 'AcceptFingerprint', id, fingerprint),
}

export const SyncService = {
  /** 0 for either platform id means any platform. */
  List: async (sourcePlatformId = 0, targetPlatformId = 0) =>
    list(await call<Sync[] | null>('SyncService', 'List', sourcePlatformId, targetPlatformId)),
  Save: (s: SyncInput) => call<Sync>('SyncService', 'Save', s),
  Delete: (id: number) => call<void>('SyncService', 'Delete', id),
  Models: async (platformId: number) => {
    const models = list(await call<Model[] | null>('SyncService', 'Models', platformId))
    return models.map((m) => ({ ...m, columns: list(m.columns), unique: list(m.unique) }))
  },
  Compatibility: async (sourcePlatformId: number, sourceModel: string, targetPlatformId: number, targetModel: string) => {
    const r = await call<CompatReport>(
      'SyncService',
      'Compatibility',
      sourcePlatformId,
      sourceModel,
      targetPlatformId,
      targetModel,
    )
    return {
      missing_on_target: list(r?.missing_on_target),
      extra_on_target: list(r?.extra_on_target),
      type_differences: list(r?.type_differences),
      key_field: r?.key_field ?? null,
    } satisfies CompatReport
  },
  Reconcile: (syncId: number, dryRun: boolean) => call<string>('SyncService', 'Reconcile', syncId, dryRun),
  /** The transformers and sync handlers registered on the platform's agent. */
  Capabilities: async (platformId: number): Promise<Capabilities> => {
    const c = await call<Capabilities | null>('SyncService', 'Capabilities', platformId)
    return { transformers: list(c?.transformers), handlers: list(c?.handlers) }
  },
  /** The platforms a record relates to; key is the value of its unique identifier field. */
  Relations: async (platformId: number, model: string, key: string) =>
    list(await call<number[] | null>('SyncService', 'Relations', platformId, model, key)),
  SetRelations: async (platformId: number, model: string, key: string, platformIds: number[]) =>
    list(await call<number[] | null>('SyncService', 'SetRelations', platformId, model, key, platformIds)),
}

export const FleetService = {
  Overview: async () => list(await call<AgentView[] | null>('FleetService', 'Overview')).map(normaliseAgent),
  SyncPlatforms: async () => {
    const r = await call<SyncReport | null>('FleetService', 'SyncPlatforms')
    return normaliseReport(r)
  },
  CancelSyncPlatforms: () => call<void>('FleetService', 'CancelSyncPlatforms'),
}

export const ActivityService = {
  List: async (limit: number) => list(await call<ActivityEntry[] | null>('ActivityService', 'List', limit)),
}

export const SettingsService = {
  Get: () => call<Settings>('SettingsService', 'Get'),
  Save: (s: Settings) => call<Settings>('SettingsService', 'Save', s),
  GenerateSyncToken: () => call<void>('SettingsService', 'GenerateSyncToken'),
  RotateSyncToken: () => call<void>('SettingsService', 'RotateSyncToken'),
  /** The install snippet with a placeholder where the sync token goes. */
  AgentSnippet: (platformId: number) => call<string>('SettingsService', 'AgentSnippet', platformId),
  /** The same with the sync token written in: the snippet is then a secret itself. */
  AgentSnippetWithToken: (platformId: number) => call<string>('SettingsService', 'AgentSnippetWithToken', platformId),
}

export function normaliseAgent(a: AgentView): AgentView {
  return { ...a, syncs: list(a.syncs) }
}

export function normaliseReport(r: SyncReport | null | undefined): SyncReport {
  return { revision: r?.revision ?? 0, results: list(r?.results) }
}
