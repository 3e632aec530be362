// Where errors and confirmations go. The shell registers a Naive UI implementation; until
// then (and in tests that do not register one) messages go to the console, never nowhere.
import { AppError, toAppError } from '@/api/call'

export interface Notifier {
  error(err: AppError, context?: string): void
  success(text: string): void
  info(text: string): void
  warning(text: string): void
}

const consoleNotifier: Notifier = {
  error: (err, context) => console.error(`[${err.code}]${context ? ` ${context}:` : ''} ${err.message}`),
  success: (text) => console.info(text),
  info: (text) => console.info(text),
  warning: (text) => console.warn(text),
}

let current: Notifier = consoleNotifier

/** Installs the notifier (the shell does at mount); null restores the console one. */
export function setNotifier(n: Notifier | null): void {
  current = n ?? consoleNotifier
}

export function notifyError(e: unknown, context?: string): AppError {
  const err = toAppError(e)
  current.error(err, context)
  return err
}

export const notifySuccess = (text: string) => current.success(text)
export const notifyInfo = (text: string) => current.info(text)
export const notifyWarning = (text: string) => current.warning(text)

/** Runs fn; a failure is shown as a notification and yields undefined. */
export async function attempt<T>(fn: () => Promise<T>, context?: string): Promise<T | undefined> {
  try {
    return await fn()
  } catch (e) {
    notifyError(e, context)
    return undefined
  }
}
