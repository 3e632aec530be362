// vue-i18n with the locales in langs/<locale>.json (English is the fallback).
import { createI18n } from 'vue-i18n'
import en from './langs/en.json'
import de from './langs/de.json'
import type { Language } from './api/types'

export type MessageSchema = typeof en

export function createAppI18n(locale: Language = 'en') {
  return createI18n<[MessageSchema], Language, false>({
    legacy: false,
    locale,
    fallbackLocale: 'en',
    messages: { en, de },
    missingWarn: false,
    fallbackWarn: false,
  })
}

export type AppI18n = ReturnType<typeof createAppI18n>
