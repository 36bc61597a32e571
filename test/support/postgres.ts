import { execFile, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { appendFile, chown, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll } from 'vitest'

const run = promisify(execFile)

/** A database made for one test on a real PostgreSQL server, and how to drop it. */
export interface FreshPostgresDatabase {
  readonly url: string
  remove(): Promise<void>
}

/** A PostgreSQL cluster of its own in a temporary directory, which a test may stop and start. */
export interface ThrowawayPostgres {
  /** A superuser URL of its `postgres` database (trust auth, on 127.0.0.1). */
  readonly url: string
  /** Starts it again after `stop`, on the same port, with its data. */
  start(): Promise<void>
  /** Stops it as an operator would (`pg_ctl stop -m fast`): sessions end, connections refused. */
  stop(): Promise<void>
  /** Stops it and deletes its directory. */
  remove(): Promise<void>
}

interface TestServer {
  readonly adminUrl: string
  readonly admin: pg.Pool
  readonly cluster: ThrowawayPostgres | undefined
}

/**
 * Where the tests look for PostgreSQL: `HUTCH_TEST_POSTGRES_URL` alone when set (an unreachable
 * one forces the throwaway cluster), else `DATABASE_URL` when it names PostgreSQL, then the local
 * server. Each URL must let its user create databases.
 */
function candidateUrls(): string[] {
  const override = process.env.HUTCH_TEST_POSTGRES_URL
  if (override !== undefined && override !== '') return [override]
  const configured = process.env.DATABASE_URL ?? ''
  return [
    ...(/^postgres(?:ql)?:\/\//i.test(configured) ? [configured] : []),
    'postgres://postgres@127.0.0.1:5432/postgres',
  ]
}

const probeTimeoutMs = 1_000

// One server per test file's worker, found (or started) at the first fresh database.
let testServer: Promise<TestServer> | undefined

// Outside vitest (a benchmark) the caller removes what it started.
if (process.env.VITEST !== undefined) {
  afterAll(async () => {
    await closeTestPostgres()
  })
}

/**
 * A new, empty database (`hutch_test_<random>`) on the tests' PostgreSQL server: the one
 * configured or local when it answers, otherwise a throwaway cluster this worker starts once and
 * stops after the file's tests.
 */
export async function freshPostgresDatabase(): Promise<FreshPostgresDatabase> {
  testServer ??= findTestServer()
  const { adminUrl, admin } = await testServer
  const name = `hutch_test_${randomBytes(6).toString('hex')}`
  await admin.query(`create database ${name}`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    url: url.href,
    async remove() {
      await admin.query(`drop database if exists ${name} with (force)`)
    },
  }
}

/** Closes the admin connections and stops the throwaway cluster, if this worker started one. */
export async function closeTestPostgres(): Promise<void> {
  const server = testServer
  testServer = undefined
  if (server === undefined) return
  const { admin, cluster } = await server
  await admin.end()
  await cluster?.remove()
}

async function findTestServer(): Promise<TestServer> {
  for (const url of candidateUrls()) {
    if (await answers(url)) return { adminUrl: url, admin: adminPool(url), cluster: undefined }
  }
  const cluster = await startThrowawayPostgres()
  return { adminUrl: cluster.url, admin: adminPool(cluster.url), cluster }
}

function adminPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2, allowExitOnIdle: true })
  pool.on('error', () => {})
  return pool
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: probeTimeoutMs })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.query('select 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

/**
 * Starts a PostgreSQL cluster from Debian's postgresql package binaries in a temporary directory:
 * trust auth, 127.0.0.1 on a free port, its unix socket in that directory, durability off for
 * speed. As root it runs as the `postgres` user (or `nobody`), since PostgreSQL refuses root.
 * Clusters a crashed test process left behind are removed first.
 */
export async function startThrowawayPostgres(): Promise<ThrowawayPostgres> {
  const bin = await postgresBinDir()
  const runAs = await unprivilegedUser()
  await removeAbandonedClusters(bin, runAs)

  const directory = await mkdtemp(path.join(os.tmpdir(), 'hutch-pg-'))
  await writeFile(path.join(directory, 'owner.pid'), `${process.pid}\n`)
  if (runAs !== undefined) await chown(directory, runAs.uid, runAs.gid)
  const data = path.join(directory, 'data')
  const command = (name: string, args: string[]) =>
    runAs === undefined
      ? run(path.join(bin, name), args)
      : run('runuser', ['-u', runAs.name, '--', path.join(bin, name), ...args])

  const port = await freePort()
  const pgCtl = (...args: string[]) => command('pg_ctl', ['--silent', '-D', data, ...args])
  let running = false
  const stopAtExit = () => {
    if (running) stopSync(bin, runAs, data)
  }
  const cluster: ThrowawayPostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      await pgCtl('start', '--wait', '-l', path.join(directory, 'server.log'))
      running = true
    },
    async stop() {
      await pgCtl('stop', '--wait', '-m', 'fast')
      running = false
    },
    async remove() {
      process.off('exit', stopAtExit)
      if (running) await cluster.stop().catch(() => stopSync(bin, runAs, data))
      await rm(directory, { recursive: true, force: true })
    },
  }
  try {
    await command('initdb', [
      ...['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C'],
      ...['--no-sync', '--no-instructions'],
    ])
    await appendFile(
      path.join(data, 'postgresql.conf'),
      [
        `port = ${port}`,
        `listen_addresses = '127.0.0.1'`,
        `unix_socket_directories = '${directory}'`,
        'fsync = off',
        'synchronous_commit = off',
        'full_page_writes = off',
        'max_connections = 200',
        '',
      ].join('\n'),
    )
    process.on('exit', stopAtExit)
    await cluster.start()
  } catch (error) {
    await cluster.remove()
    throw new Error(
      `could not start a throwaway PostgreSQL cluster from ${bin} (set DATABASE_URL to a server the tests may create databases on instead)`,
      { cause: error },
    )
  }
  return cluster
}

async function postgresBinDir(): Promise<string> {
  const root = '/usr/lib/postgresql'
  const versions = await readdir(root).catch(() => [])
  const newest = versions
    .filter((version) => /^\d+$/.test(version))
    .toSorted((a, b) => Number(b) - Number(a))[0]
  if (newest === undefined) {
    throw new Error(
      'no PostgreSQL server answers and no /usr/lib/postgresql/*/bin/initdb to start one: install the postgresql package or set DATABASE_URL',
    )
  }
  return path.join(root, newest, 'bin')
}

interface SystemUser {
  name: string
  uid: number
  gid: number
}

async function unprivilegedUser(): Promise<SystemUser | undefined> {
  if (process.getuid?.() !== 0) return undefined
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number((await run('id', ['-u', name])).stdout.trim())
      const gid = Number((await run('id', ['-g', name])).stdout.trim())
      return { name, uid, gid }
    } catch {
      // No such user: try the next.
    }
  }
  throw new Error('running as root, and neither a postgres nor a nobody user to run PostgreSQL as')
}

function stopSync(bin: string, runAs: SystemUser | undefined, data: string): void {
  const pgCtl = path.join(bin, 'pg_ctl')
  const args = ['--silent', '-D', data, 'stop', '--wait', '-m', 'immediate']
  if (runAs === undefined) spawnSync(pgCtl, args)
  else spawnSync('runuser', ['-u', runAs.name, '--', pgCtl, ...args])
}

async function removeAbandonedClusters(bin: string, runAs: SystemUser | undefined): Promise<void> {
  const entries = await readdir(os.tmpdir()).catch(() => [])
  for (const entry of entries.filter((name) => name.startsWith('hutch-pg-'))) {
    const directory = path.join(os.tmpdir(), entry)
    const owner = Number(await readFile(path.join(directory, 'owner.pid'), 'utf8').catch(() => ''))
    if (!Number.isInteger(owner) || owner <= 0 || isAlive(owner)) continue
    stopSync(bin, runAs, path.join(directory, 'data'))
    await rm(directory, { recursive: true, force: true })
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}
