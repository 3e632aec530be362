// Field errors as the forms show them: each value is an i18n key under `validation.` (client
// side) or the message of a Go `validation` error (server side, shown as is).

export type FieldErrors<F extends string = string> = Partial<Record<F, string>>

export function hasErrors(errors: FieldErrors): boolean {
  return Object.values(errors).some(Boolean)
}

/** The i18n key prefix of client-side messages. */
export const VALIDATION_PREFIX = 'validation.'
