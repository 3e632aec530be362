// Backend event names, defined once (mirrored from the Go side), and typed subscription.
import type { AgentView, Progress, SyncReport } from './types'
import { useTransport } from './transport'

export const Events = {
  /** One agent's step during Sync Platforms; payload Progress. */
  SyncPlatformsProgress: 'sync-platforms:progress',
  /** Sync Platforms finished; payload SyncReport. */
  SyncPlatformsDone: 'sync-platforms:done',
  /** Fresh agent health; payload AgentView[] (the whole fleet) or one AgentView. */
  FleetStatus: 'fleet:status',
} as const

export type EventName = (typeof Events)[keyof typeof Events]

export interface EventPayloads {
  'sync-platforms:progress': Progress
  'sync-platforms:done': SyncReport
  'fleet:status': AgentView[] | AgentView
}

/** Subscribes to a backend event; returns the unsubscribe function. */
export function onEvent<N extends EventName>(name: N, handler: (data: EventPayloads[N]) => void): () => void {
  return useTransport().subscribe(name, (data) => handler(data as EventPayloads[N]))
}
