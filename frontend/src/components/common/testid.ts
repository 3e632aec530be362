// Marks an element for the end-to-end tests. Naive UI types row props as HTMLAttributes,
// which has no data-* members, hence the cast.
import type { HTMLAttributes } from 'vue'

export function testid(id: string): HTMLAttributes {
  return { 'data-testid': id } as unknown as HTMLAttributes
}
