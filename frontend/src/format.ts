// Display formatting of timestamps and durations in the current UI language.

export function formatDateTime(iso: string | null | undefined, locale = 'en'): string {
  if (!iso) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return '—'
  return new Intl.DateTimeFormat(locale, { dateStyle: 'short', timeStyle: 'medium' }).format(d)
}

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
  ['second', 1_000],
]

/** "3 minutes ago"; "—" for a missing time. */
export function formatRelative(iso: string | null | undefined, locale = 'en', now = Date.now()): string {
  if (!iso) return '—'
  const t = new Date(iso).getTime()
  if (Number.isNaN(t) || t <= 0) return '—'
  const diff = t - now
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' })
  for (const [unit, ms] of UNITS) {
    if (Math.abs(diff) >= ms || unit === 'second') return rtf.format(Math.round(diff / ms), unit)
  }
  return rtf.format(0, 'second')
}

/** A compact duration: "850 ms", "3.2 s", "4 min 5 s", "2 h 10 min". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—'
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`
  const totalSec = Math.round(ms / 1000)
  if (totalSec < 3600) {
    const s = totalSec % 60
    return `${Math.floor(totalSec / 60)} min${s ? ` ${s} s` : ''}`
  }
  const min = Math.floor(totalSec / 60) % 60
  return `${Math.floor(totalSec / 3600)} h${min ? ` ${min} min` : ''}`
}

export function formatNumber(n: number, locale = 'en'): string {
  return new Intl.NumberFormat(locale).format(n)
}
