// Hash history: the Wails asset server and the web mode both serve a single index.html.
// Pages are bundled eagerly: everything is local, and switching pages must be instant.
import { createRouter, createWebHashHistory, type RouteRecordRaw } from 'vue-router'
import DashboardPage from './components/dashboard/DashboardPage.vue'
import PlatformsPage from './components/platforms/PlatformsPage.vue'
import SyncsPage from './components/syncs/SyncsPage.vue'
import RelationsPage from './components/relations/RelationsPage.vue'
import ActivityPage from './components/activity/ActivityPage.vue'
import SettingsPage from './components/settings/SettingsPage.vue'

export const routes: RouteRecordRaw[] = [
  { path: '/', redirect: '/dashboard' },
  { path: '/dashboard', name: 'dashboard', component: DashboardPage },
  { path: '/platforms', name: 'platforms', component: PlatformsPage },
  { path: '/syncs', name: 'syncs', component: SyncsPage },
  { path: '/relations', name: 'relations', component: RelationsPage },
  { path: '/activity', name: 'activity', component: ActivityPage },
  { path: '/settings', name: 'settings', component: SettingsPage },
  { path: '/:pathMatch(.*)*', redirect: '/dashboard' },
]

/** The left navigation, in order; Alt+1…6 and "g <key>" jump to them. */
export const NAV = [
  { name: 'dashboard', key: 'd' },
  { name: 'platforms', key: 'p' },
  { name: 'syncs', key: 's' },
  { name: 'relations', key: 'l' },
  { name: 'activity', key: 'a' },
  { name: 'settings', key: 'c' },
] as const

export function createAppRouter() {
  return createRouter({ history: createWebHashHistory(), routes })
}
