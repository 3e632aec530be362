// The end-to-end tests' fixtures: the real binaries (bin/mooxsync-web, bin/mooxsync-agent,
// bin/mooxsync-demo), processes on loopback with their logs in a temp directory, and
// Debian's chromium driven by playwright-core. Nothing here talks to anything but 127.0.0.1.
import { execFileSync, spawn } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = resolve(fileURLToPath(new URL('../..', import.meta.url)))
export const bin = (name) => join(root, 'bin', name)
export const ci = process.env.CI === 'true'

/** Builds what the tests run (quick when nothing changed), unless MOOXSYNC_E2E_NO_BUILD=1. */
export function buildBinaries() {
  if (process.env.MOOXSYNC_E2E_NO_BUILD === '1') return
  execFileSync('make', ['--no-print-directory', '-s', '-C', root, 'web', 'agent', 'demo'], { stdio: 'inherit' })
}

/** The chromium to drive: $MOOXSYNC_CHROMIUM or Debian's /usr/bin/chromium; null when absent. */
export function chromiumPath() {
  const p = process.env.MOOXSYNC_CHROMIUM || '/usr/bin/chromium'
  return existsSync(p) ? p : null
}

export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/**
 * A temp directory for one run (databases, agent state, logs), and the artifacts directory
 * for screenshots: $MOOXSYNC_E2E_ARTIFACTS, default build/artifacts/e2e (emptied first).
 */
export function workDir() {
  const dir = mkdtempSync(join(tmpdir(), 'mooxsync-e2e-'))
  let artifacts = process.env.MOOXSYNC_E2E_ARTIFACTS
  if (!artifacts) {
    // Only the default directory is emptied, never one a caller named.
    artifacts = join(root, 'build', 'artifacts', 'e2e')
    rmSync(artifacts, { recursive: true, force: true })
  }
  mkdirSync(artifacts, { recursive: true })
  return { dir, artifacts }
}

/** A port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer()
    srv.once('error', rej)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => res(port))
    })
  })
}

const children = new Set()

/** Starts a process with its output in logFile; stop() sends SIGTERM and waits. */
function start(cmd, args, { env = {}, logFile, stdout = 'log' } = {}) {
  const fd = openSync(logFile, 'a')
  const child = spawn(cmd, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', stdout === 'pipe' ? 'pipe' : fd, fd],
  })
  closeSync(fd)
  let exited = null
  const done = new Promise((res) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal }
      children.delete(proc)
      res(exited)
    })
  })
  const proc = {
    child,
    done,
    get exited() {
      return exited
    },
    async stop(timeoutMs = 20_000) {
      if (exited) return exited
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      const r = await done
      clearTimeout(t)
      return r
    },
  }
  children.add(proc)
  return proc
}

/** Stops every process still running (SIGTERM, then SIGKILL). */
export async function stopAll() {
  await Promise.all([...children].map((p) => p.stop()))
}
process.on('exit', () => {
  for (const p of children) p.child.kill('SIGKILL')
})

/**
 * Starts web mode on a free loopback port with its own catalog, settings and secrets file,
 * and resolves to { url, base, session, proc } once it printed its URL.
 */
export async function startWeb(dir, { pollInterval = '1s' } = {}) {
  const proc = start(
    bin('mooxsync-web'),
    [
      '--listen', '127.0.0.1:0',
      '--catalog', join(dir, 'catalog.db'),
      '--settings', join(dir, 'settings.json'),
      '--secrets-file', join(dir, 'secrets.json'),
      '--poll-interval', pollInterval,
    ],
    { env: { XDG_CONFIG_HOME: join(dir, 'config') }, logFile: join(dir, 'web.log'), stdout: 'pipe' },
  )
  const url = await new Promise((res, rej) => {
    let buf = ''
    const timer = setTimeout(() => rej(new Error(`web mode printed no URL in 15s; see ${join(dir, 'web.log')}`)), 15_000)
    proc.child.stdout.on('data', (d) => {
      buf += d
      const line = buf.split('\n')[0]
      if (buf.includes('\n')) {
        clearTimeout(timer)
        res(line.trim())
      }
    })
    proc.done.then((e) => rej(new Error(`web mode exited (${JSON.stringify(e)}); see ${join(dir, 'web.log')}`)))
  })
  const u = new URL(url)
  return { url, base: u.origin, session: u.searchParams.get('session'), proc }
}

/**
 * Creates a seeded demo application database (site "shop" or "blog") and starts a real
 * agent on it: plain HTTP on a free loopback port, SYNC_TOKEN from the argument.
 */
export async function startAgent(dir, site, syncToken) {
  const db = join(dir, `${site}.db`)
  if (!existsSync(db)) execFileSync(bin('mooxsync-demo'), ['appdb', db, site])
  const port = await freePort()
  const state = join(dir, `${site}-agent`)
  const listen = `127.0.0.1:${port}`
  const proc = start(bin('mooxsync-agent'), ['serve', '--state', state, '--db', `sqlite:${db}`, '--listen', listen, '--plain-http'], {
    env: { SYNC_TOKEN: syncToken },
    logFile: join(dir, `${site}-agent.log`),
  })
  const url = `http://${listen}`
  await waitFor(async () => (await httpGet(`${url}/api/health`)).status === 200, {
    timeout: 15_000,
    what: `the ${site} agent to answer on ${url}`,
    abort: () => proc.exited && `the ${site} agent exited: ${JSON.stringify(proc.exited)}`,
  })
  return { site, db, url, port, proc }
}

/** Runs SQL on a SQLite file with the demo tool; rows come back as objects. */
export function sql(file, statement) {
  return JSON.parse(execFileSync(bin('mooxsync-demo'), ['sql', file, statement], { encoding: 'utf8' }))
}

/** Reads the web mode's secrets file (the tests' opt-in store). */
export function readSecrets(dir) {
  const f = join(dir, 'secrets.json')
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')).secrets : {}
}

/** A plain HTTP request with full control of the headers (fetch cannot set Host). */
export function httpRequest(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((res, rej) => {
    const req = request(url, { method, headers }, (resp) => {
      let data = ''
      resp.setEncoding('utf8')
      resp.on('data', (d) => (data += d))
      resp.on('end', () => res({ status: resp.statusCode, body: data }))
    })
    req.on('error', rej)
    req.setTimeout(5000, () => req.destroy(new Error(`timeout: ${method} ${url}`)))
    if (body !== undefined) req.write(body)
    req.end()
  })
}

export function httpGet(url) {
  return httpRequest(url).catch(() => ({ status: 0, body: '' }))
}

/** Polls fn until it returns something truthy; fails after timeout with what. */
export async function waitFor(fn, { timeout = 10_000, interval = 200, what = 'a condition', abort } = {}) {
  const end = Date.now() + timeout
  let last
  for (;;) {
    const reason = abort?.()
    if (reason) throw new Error(`while waiting for ${what}: ${reason}`)
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ''}`)
    await new Promise((r) => setTimeout(r, interval))
  }
}
