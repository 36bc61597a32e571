import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { afterAll } from 'vitest'

const run = promisify(execFile)

/** How a client reaches the S3 server and whom it signs as. */
export interface S3Endpoint {
  /** `http://127.0.0.1:<port>`; path-style addressing. */
  readonly endpoint: string
  readonly region: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
}

/**
 * A single-node Ceph cluster of its own (one monitor, one memstore OSD, auth none) with a RADOS
 * Gateway in front: a real S3 server. Its S3 user has real keys; requests are signed.
 */
export interface CephS3 extends S3Endpoint {
  /** Stops the gateway alone (SIGTERM); the cluster and its objects stay. */
  stopGateway(): Promise<void>
  /** Starts the gateway again on the same port and waits until it answers. */
  startGateway(): Promise<void>
  /** Freezes the gateway (SIGSTOP): connections open, nothing answers; a slow store. */
  pauseGateway(): void
  /** Thaws a paused gateway (SIGCONT). */
  resumeGateway(): void
  /** Stops every daemon and deletes the directory. */
  remove(): Promise<void>
}

/** A bucket made for one test, and how to remove it. */
export interface FreshS3Bucket {
  readonly bucket: string
  readonly server: CephS3
  remove(): Promise<void>
}

const directoryPrefix = 'hutch-ceph-'
const startTimeoutMs = 60_000
const stopTimeoutMs = 10_000
const region = 'default'
const commandAttempts = 5

// One cluster per test file's worker, started at the first fresh bucket.
let testCeph: Promise<CephS3> | undefined

// Outside vitest (a benchmark) the caller removes what it started.
if (process.env.VITEST !== undefined) {
  afterAll(async () => {
    await closeTestCeph()
  })
}

/**
 * A new, empty bucket on this worker's Ceph RADOS Gateway, which is started once (about 3 s) and
 * removed after the file's tests.
 */
export async function freshS3Bucket(): Promise<FreshS3Bucket> {
  testCeph ??= startCephS3()
  const server = await testCeph
  const bucket = `hutch-test-${randomBytes(6).toString('hex')}`
  const client = s3Client(server)
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }))
  } finally {
    client.destroy()
  }
  return {
    bucket,
    server,
    async remove() {
      // The objects are left to the cluster's removal: the bucket goes with its memstore OSD.
      const remover = s3Client(server)
      try {
        await remover.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined)
      } finally {
        remover.destroy()
      }
    },
  }
}

/** Stops this worker's cluster, if it started one. */
export async function closeTestCeph(): Promise<void> {
  const ceph = testCeph
  testCeph = undefined
  if (ceph === undefined) return
  await (await ceph).remove()
}

/** An SDK client for the gateway, as the tests' own side (not hutch's). */
export function s3Client(endpoint: S3Endpoint): S3Client {
  return new S3Client({
    endpoint: endpoint.endpoint,
    region: endpoint.region,
    forcePathStyle: true,
    credentials: {
      accessKeyId: endpoint.accessKeyId,
      secretAccessKey: endpoint.secretAccessKey,
    },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
}

/**
 * Starts a Ceph cluster from Debian's `ceph-mon`, `ceph-osd` and `radosgw` packages in a temporary
 * directory, on free loopback ports. Tuned to start in seconds: memstore OSD, one replica, one
 * placement group per pool, paxos proposals without their one-second batching delay. Clusters a
 * crashed test process left behind are removed first.
 */
export async function startCephS3(): Promise<CephS3> {
  await requireCephBinaries()
  await removeAbandonedClusters()
  const directory = await mkdtemp(path.join(os.tmpdir(), directoryPrefix))
  await writeFile(path.join(directory, 'owner.pid'), `${process.pid}\n`)
  const [monPort, gatewayPort] = [await freePort(), await freePort()]
  const fsid = randomUUID()
  const configPath = path.join(directory, 'ceph.conf')
  await mkdir(path.join(directory, 'run'))
  await mkdir(path.join(directory, 'osd0'))
  await writeFile(configPath, cephConfig(directory, fsid, monPort, gatewayPort))
  const daemons = new Set<ChildProcess>()
  const killAtExit = () => {
    for (const daemon of daemons) daemon.kill('SIGKILL')
  }
  process.on('exit', killAtExit)
  // A command sent while the monitor is still settling is now and then refused ("problem
  // getting command descriptions from mon"): tried again a few times.
  const ceph = async (...args: string[]) => {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await run('ceph', ['-c', configPath, '--connect-timeout', '10', ...args])
      } catch (error) {
        if (attempt === commandAttempts) throw error
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt))
      }
    }
  }
  const daemon = (command: string, args: string[]): ChildProcess => {
    const child = spawn(command, ['-f', '-c', configPath, ...args], { stdio: 'ignore' })
    child.on('error', () => {})
    daemons.add(child)
    child.once('exit', () => daemons.delete(child))
    return child
  }
  let gateway: ChildProcess | undefined
  const accessKeyId = `HUTCH${randomBytes(8).toString('hex').toUpperCase()}`
  const secretAccessKey = randomBytes(24).toString('base64url')
  const server: CephS3 = {
    endpoint: `http://127.0.0.1:${gatewayPort}`,
    region,
    accessKeyId,
    secretAccessKey,
    async stopGateway() {
      if (gateway === undefined) return
      await stopProcess(gateway)
      gateway = undefined
    },
    async startGateway() {
      if (gateway !== undefined) return
      gateway = daemon('radosgw', ['-n', 'client.rgw'])
      await waitForGateway(server.endpoint, gateway, directory)
    },
    pauseGateway() {
      gateway?.kill('SIGSTOP')
    },
    resumeGateway() {
      gateway?.kill('SIGCONT')
    },
    async remove() {
      gateway?.kill('SIGCONT')
      await Promise.all([...daemons].map(stopProcess))
      process.off('exit', killAtExit)
      await rm(directory, { recursive: true, force: true })
    },
  }
  try {
    await run('monmaptool', [
      ...['--create', '--add', 'a', `v1:127.0.0.1:${monPort}`],
      ...['--fsid', fsid, path.join(directory, 'monmap')],
    ])
    await run('ceph-mon', [
      ...['-c', configPath, '--mkfs', '-i', 'a'],
      ...['--monmap', path.join(directory, 'monmap')],
    ])
    daemon('ceph-mon', ['-i', 'a'])
    const osdUuid = randomUUID()
    await ceph('osd', 'new', osdUuid)
    await run('ceph-osd', ['-c', configPath, '-i', '0', '--mkfs', '--osd-uuid', osdUuid])
    await ceph('osd', 'crush', 'add', 'osd.0', '1', 'root=default')
    daemon('ceph-osd', ['-i', '0'])
    await server.startGateway()
    await run('radosgw-admin', [
      ...['-c', configPath, 'user', 'create', '--uid', 'hutch', '--display-name', 'hutch'],
      ...['--access-key', accessKeyId, '--secret-key', secretAccessKey],
    ])
  } catch (error) {
    const log = await readFile(path.join(directory, 'client.rgw.log'), 'utf8').catch(() => '')
    await server.remove()
    throw new Error(
      `could not start a Ceph RADOS Gateway (apt-get install ceph-mon ceph-osd radosgw); its log ends:\n${log.slice(-2000)}`,
      { cause: error },
    )
  }
  return server
}

function cephConfig(directory: string, fsid: string, monPort: number, gatewayPort: number) {
  return `[global]
fsid = ${fsid}
mon host = v1:127.0.0.1:${monPort}
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
keyring = /dev/null
run dir = ${directory}/run
admin socket = ${directory}/run/$name.asok
log file = ${directory}/$name.log
pid file = ${directory}/run/$name.pid
mon data = ${directory}/mon
osd data = ${directory}/osd$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd crush update on start = false
osd class update on start = false
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.01
paxos min wait = 0.001
mon lease = 1
osd heartbeat grace = 5

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:${gatewayPort} tcp_nodelay=1
rgw dns name = localhost
rgw thread pool size = 64
`
}

async function requireCephBinaries(): Promise<void> {
  for (const binary of ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool']) {
    try {
      await access(`/usr/bin/${binary}`)
    } catch {
      throw new Error(
        `/usr/bin/${binary} is missing: apt-get install ceph-mon ceph-osd radosgw (scripts/test installs them)`,
      )
    }
  }
}

async function waitForGateway(endpoint: string, gateway: ChildProcess, directory: string) {
  const deadline = Date.now() + startTimeoutMs
  while (Date.now() < deadline) {
    if (gateway.exitCode !== null || gateway.signalCode !== null) break
    const answered = await fetch(endpoint, { signal: AbortSignal.timeout(1_000) }).then(
      (response) => response.ok,
      () => false,
    )
    if (answered) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const log = await readFile(path.join(directory, 'client.rgw.log'), 'utf8').catch(() => '')
  throw new Error(
    `the RADOS Gateway did not answer at ${endpoint}; its log ends:\n${log.slice(-2000)}`,
  )
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs)
  try {
    await exited
  } finally {
    clearTimeout(timer)
  }
}

/** Kills the daemons of clusters whose test process is gone, and removes their directories. */
async function removeAbandonedClusters(): Promise<void> {
  const entries = await readdir(os.tmpdir()).catch(() => [])
  for (const entry of entries.filter((name) => name.startsWith(directoryPrefix))) {
    const directory = path.join(os.tmpdir(), entry)
    const owner = Number(await readFile(path.join(directory, 'owner.pid'), 'utf8').catch(() => ''))
    if (!Number.isInteger(owner) || owner <= 0 || isAlive(owner)) continue
    const pidFiles = await readdir(path.join(directory, 'run')).catch(() => [])
    for (const pidFile of pidFiles.filter((name) => name.endsWith('.pid'))) {
      const pid = Number(await readFile(path.join(directory, 'run', pidFile), 'utf8'))
      const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
      // Only a daemon of this very cluster: a recycled pid is someone else's process.
      if (Number.isInteger(pid) && pid > 0 && command.includes(directory)) {
        process.kill(pid, 'SIGKILL')
      }
    }
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
