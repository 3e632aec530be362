// End-to-end: the control center in web mode (bin/mooxsync-web, its own catalog and an
// opt-in secrets file) with two real agents (bin/mooxsync-agent on SQLite databases), driven
// in Debian's chromium. An admin's first session: generate the sync token, add two platforms
// (a bad domain is refused first), Sync Platforms, create a sync with the models listed live
// by the agents, Sync Platforms again, insert a row into the source database with plain SQL
// and see it in the target database and on the Dashboard, then lose an agent.
//
// Screenshots of every page land in build/artifacts/e2e (MOOXSYNC_E2E_ARTIFACTS chooses
// another directory), and one per failed step; after a failure the processes' logs and
// databases stay in the temp directory printed at the end. Without chromium the test
// is skipped, unless CI=true: then it fails.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import {
  buildBinaries,
  chromiumArgs,
  chromiumPath,
  ci,
  httpRequest,
  readSecrets,
  sql,
  startAgent,
  startWeb,
  stopAll,
  waitFor,
  workDir,
} from './harness.mjs'

const chromium = chromiumPath()
const skip = !chromium && !ci ? 'chromium is not installed (/usr/bin/chromium; apt-get install chromium)' : false

describe('control center in web mode with real agents', { skip, timeout: 5 * 60_000 }, () => {
  let work, web, browser, page
  const agents = {}
  let failed = false

  const tid = (id) => page.getByTestId(id)

  /** Waits until the element's text matches re. */
  async function expectText(locator, re, timeout = 10_000) {
    await waitFor(async () => re.test((await locator.textContent({ timeout: 1000 })) ?? ''), {
      timeout,
      what: `text ${re} in ${locator}`,
    }).catch(async (e) => {
      const got = await locator.textContent({ timeout: 500 }).catch(() => '(absent)')
      throw new Error(`${e.message}; got ${JSON.stringify(got)}`)
    })
  }

  async function go(pageName) {
    await tid(`nav-${pageName}`).click()
    await tid(`page-${pageName}`).waitFor()
  }

  /** Picks an option of a Naive UI select by its label. */
  async function choose(selectTestId, label) {
    await tid(selectTestId).click()
    // Naive UI keeps closed menus in the page, hidden: only the open one is visible.
    const option = page.locator('.n-base-select-option:visible', { hasText: label })
    await option.first().waitFor()
    await option.first().click()
  }

  async function syncPlatforms() {
    await go('dashboard')
    await tid('sync-platforms-button').click()
    await tid('sync-platforms-confirm').click()
    const progress = tid('sync-platforms-progress')
    await waitFor(async () => ['done', 'failed', 'canceled'].includes(await progress.getAttribute('data-state')), {
      timeout: 30_000,
      what: 'Sync Platforms to finish',
    })
    return progress.getAttribute('data-state')
  }

  async function shoot(name) {
    await page.screenshot({ path: join(work.artifacts, `${name}.png`), fullPage: true })
  }

  before(async () => {
    if (!chromium) throw new Error('CI=true: chromium is required (/usr/bin/chromium or MOOXSYNC_CHROMIUM)')
    buildBinaries()
    work = workDir()
    web = await startWeb(work.dir)
    const { chromium: pw } = await import('playwright-core')
    browser = await pw.launch({ executablePath: chromium, args: chromiumArgs })
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
    page.setDefaultTimeout(10_000)
    page.on('pageerror', (e) => console.error('page error:', e.message))
  })

  after(async () => {
    await browser?.close().catch(() => {})
    await stopAll()
    if (!work) return
    console.log(`e2e artifacts (screenshots): ${work.artifacts}`)
    // The processes' logs and databases are kept when something failed.
    if (failed) console.log(`e2e logs and databases: ${work.dir}`)
    else rmSync(work.dir, { recursive: true, force: true })
  })

  const step = (name, fn) =>
    test(name, async (t) => {
      if (failed) return t.skip('an earlier step failed')
      try {
        await fn(t)
      } catch (e) {
        failed = true
        if (page) await shoot(`failed-${name.replace(/[^a-z0-9]+/gi, '-')}`).catch(() => {})
        throw e
      }
    })

  step('requests without the session token, or for another host, are refused', async () => {
    const rpc = `${web.base}/rpc/FleetService.Overview`
    const none = await httpRequest(rpc, { method: 'POST', body: '[]', headers: { 'content-type': 'application/json' } })
    assert.equal(none.status, 401, none.body)
    assert.match(JSON.parse(none.body).code, /unauthorized/)
    const wrong = await httpRequest(rpc, { method: 'POST', body: '[]', headers: { 'X-Mooxsync-Session': 'x'.repeat(43) } })
    assert.equal(wrong.status, 401)
    const events = await httpRequest(`${web.base}/events`)
    assert.equal(events.status, 401)
    const rebinding = await httpRequest(rpc, {
      method: 'POST',
      body: '[]',
      headers: { 'X-Mooxsync-Session': web.session, Host: `evil.example:${new URL(web.base).port}` },
    })
    assert.equal(rebinding.status, 403)
    const ok = await httpRequest(rpc, { method: 'POST', body: '[]', headers: { 'X-Mooxsync-Session': web.session } })
    assert.equal(ok.status, 200, ok.body)
  })

  step('the app opens with the session URL, which then leaves the address bar', async () => {
    await page.goto(web.url)
    await tid('page-dashboard').waitFor()
    assert.ok(!page.url().includes('session='), page.url())
    await expectText(tid('transport-kind'), /web/i)
    // Tokens in a file were opted into: the UI says so.
    await tid('secrets-warning-banner').waitFor()
  })

  step('settings: generate the sync token, then start the agents with it', async () => {
    await go('settings')
    await tid('settings-sync-token-generate').click()
    await tid('settings-sync-token-rotate').waitFor()
    await expectText(tid('settings-secrets-backend'), /file/i)
    const token = readSecrets(work.dir)['sync-token']
    assert.ok(token && token.length >= 32, 'the sync token is in the secrets file')
    agents.shop = await startAgent(work.dir, 'shop', token)
    agents.blog = await startAgent(work.dir, 'blog', token)
  })

  step('platforms: a bad domain is refused, then Shop and Blog are created', async () => {
    await go('platforms')
    for (const [i, site, name] of [
      [1, agents.shop, 'Shop'],
      [2, agents.blog, 'Blog'],
    ]) {
      await tid('platforms-new').click()
      await tid('platform-form').waitFor()
      await tid('platform-name').fill(name)
      await tid('platform-agent-url').fill(site.url)
      if (i === 1) {
        await tid('platform-domain').fill(`https://${name.toLowerCase()}.localhost/`)
        await tid('platform-save').click()
        await tid('platform-domain-error').waitFor()
        await expectText(tid('platform-domain-error'), /\S/)
      }
      await tid('platform-domain').fill(`${name.toLowerCase()}.localhost`)
      await waitFor(async () => (await tid('platform-token').inputValue()).length >= 32, { what: 'the generated token' })
      await tid('platform-save').click()
      await tid(`platform-row-${i}`).waitFor()
      await expectText(tid(`platform-row-${i}`), new RegExp(`${name}.*${name.toLowerCase()}\\.localhost`))
      await tid('platform-form').waitFor({ state: 'detached' })
    }
    await shoot('platforms')
  })

  step('Sync Platforms enrolls both agents', async () => {
    assert.equal(await syncPlatforms(), 'done')
    await expectText(tid('sync-progress-state-1'), /^OK$/)
    await expectText(tid('sync-progress-state-2'), /^OK$/)
    await expectText(tid('sync-summary-ok'), /2/)
  })

  step('syncs: create posts -> posts with the models listed live by the agents', async () => {
    await go('syncs')
    await tid('syncs-new').click()
    await tid('sync-form').waitFor()
    await choose('sync-source-platform', 'Shop — shop.localhost')
    await tid('sync-source-model').click()
    const options = page.locator('.n-base-select-option:visible')
    await options.filter({ hasText: /^posts$/ }).waitFor()
    const names = await options.allTextContents()
    assert.ok(names.includes('users') && names.includes('posts'), `models listed: ${names}`)
    await options.filter({ hasText: /^posts$/ }).click()
    await choose('sync-target-platform', 'Blog — blog.localhost')
    await choose('sync-target-model', 'posts')
    await expectText(tid('compat-key'), /^slug$/, 15_000)
    await tid('compat-ok').waitFor()
    await expectText(tid('sync-title-preview'), /shop\.localhost \(posts\) to blog\.localhost \(posts\)/)
    await shoot('sync-form')
    await tid('sync-save').click()
    await tid('sync-row-1').waitFor()
    await tid('sync-form').waitFor({ state: 'detached' })
  })

  step('Sync Platforms pushes the sync to both agents', async () => {
    assert.equal(await syncPlatforms(), 'done')
    await expectText(tid('sync-progress-state-1'), /^OK$/)
    await expectText(tid('sync-progress-state-2'), /^OK$/)
  })

  step('the dashboard shows both agents online and up to date', async () => {
    await go('dashboard')
    for (const id of [1, 2]) {
      await page.locator(`[data-testid="agent-online-${id}"][data-online="true"]`).waitFor({ timeout: 15_000 })
    }
    await expectText(tid('stat-online'), /2\s*\/\s*2/)
    await waitFor(async () => {
      const [a, b] = await Promise.all([tid('agent-revision-1').textContent(), tid('agent-revision-2').textContent()])
      const inForce = (s) => s.split('/').map((x) => Number(x.trim()))
      return [a, b].every((s) => {
        const [have, want] = inForce(s)
        return have > 0 && have === want
      })
    }, { timeout: 15_000, what: 'both agents at the desired revision' })
    await shoot('dashboard')
  })

  step('a row inserted into the Shop with plain SQL reaches the Blog, and the Dashboard shows the sync', async () => {
    sql(
      agents.shop.db,
      "INSERT INTO posts (slug, title, body, created_at, updated_at) VALUES ('e2e-post', 'From the e2e test', 'Hello Blog', datetime('now'), datetime('now'))",
    )
    const rows = await waitFor(
      () => {
        const r = sql(agents.blog.db, "SELECT slug, title, body FROM posts WHERE slug = 'e2e-post'")
        return r.length ? r : null
      },
      { timeout: 30_000, what: 'the post on the Blog' },
    )
    assert.deepEqual(rows, [{ slug: 'e2e-post', title: 'From the e2e test', body: 'Hello Blog' }])

    await go('dashboard')
    // The Blog's agent reports the applied change on the sync it is the target of.
    const blogRow = tid('agent-row-2')
    await blogRow.locator('.n-data-table-expand-trigger').click()
    const target = tid('agent-sync-row-2-1-target')
    await target.waitFor({ timeout: 15_000 })
    await waitFor(async () => {
      const cells = await target.locator('td').allTextContents()
      // id, role, status, pending, sent, applied, failed, lag, last sync, error
      return Number(cells[5]?.replace(/\D/g, '') || 0) >= 1
    }, { timeout: 20_000, interval: 500, what: 'the applied count on the Blog' })
    const lag = (await target.locator('td').nth(7).textContent())?.trim()
    assert.ok(lag && lag !== '', `lag shown: ${lag}`)
    await shoot('dashboard-synced')
  })

  step('an agent that stops shows as unreachable', async () => {
    await agents.blog.proc.stop()
    await go('dashboard')
    await page.locator('[data-testid="agent-online-2"][data-online="false"]').waitFor({ timeout: 15_000 })
    assert.equal(await syncPlatforms(), 'done')
    await expectText(tid('sync-progress-state-1'), /^OK$/)
    await expectText(tid('sync-progress-state-2'), /^Unreachable$/)
    await expectText(tid('sync-summary-unreachable'), /1/)
    await shoot('dashboard-unreachable')
  })

  step('every page renders (screenshots kept as artifacts)', async () => {
    for (const p of ['dashboard', 'platforms', 'syncs', 'activity', 'settings']) {
      await go(p)
      await page.waitForTimeout(300)
      await shoot(`page-${p}`)
    }
    await go('activity')
    await tid('activity-table').waitFor()
    assert.ok((await page.locator('[data-testid^="activity-row-"]').count()) > 0, 'the pushes are listed')
  })
})
