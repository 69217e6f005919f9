// What crosses between the processes of a group over cluster IPC, declared once. Every message
// carries `certgate` so prom-client's own cluster messages on the same channel are left alone.
import type { HostPort } from '../config.js'
import type { RegistryChange } from '../registry/types.js'

export interface ListeningOn { readonly name: string, readonly protocol: string, readonly address: HostPort }

/** The environment variable through which the primary gives its processes the group's embedded broker. */
export const GROUP_BROKER_ENV = 'CERTGATE_GROUP_BROKER'

export type MemberMessage =
  | { readonly certgate: 'ready', readonly listeners: readonly ListeningOn[], readonly admin: HostPort }
  | { readonly certgate: 'change', readonly change: RegistryChange }
  | { readonly certgate: 'metrics_request', readonly id: number }

export type PrimaryMessage =
  | { readonly certgate: 'change', readonly change: RegistryChange }
  | { readonly certgate: 'metrics', readonly id: number, readonly text?: string, readonly error?: string }

const isCertgate = (m: unknown): boolean => typeof m === 'object' && m !== null && typeof (m as { certgate?: unknown }).certgate === 'string'
export const isMemberMessage = (m: unknown): m is MemberMessage => isCertgate(m)
export const isPrimaryMessage = (m: unknown): m is PrimaryMessage => isCertgate(m)
