import fs from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Logger as PinoLogger } from 'pino'
import type { PreparedKind, Slot } from '@hutch/sandbox'
import { BubblewrapBackend, defaultSandboxStateDir, Sandbox } from '@hutch/sandbox'
import type { HutchConfig } from './config/index.ts'
import { createDatabase } from './db/database.ts'
import { ExecutionRepository } from './executions/execution-repository.ts'
import { ExecutionService } from './executions/execution-service.ts'
import { RunQueue } from './executions/run-queue.ts'
import type { AppServices } from './http/app.ts'
import { buildApp } from './http/app.ts'
import { ApiKeyAuth } from './http/auth.ts'
import { RateLimiter } from './http/rate-limiter.ts'
import { Metrics } from './metrics/metrics.ts'
import type { Namespace } from './namespace.ts'
import { WarmPool } from './pool/warm-pool.ts'
import { defaultStandbyPreload } from './sessions/kernel-standby.ts'
import { SessionRepository } from './sessions/session-repository.ts'
import { SessionService } from './sessions/session-service.ts'
import { SessionStateStore } from './sessions/session-state-store.ts'
import { LocalStorage } from './storage/local-storage.ts'
import { S3Storage } from './storage/s3-storage.ts'

/** A composed server: the app to listen with, and how to stop everything it started. */
export interface HutchServer {
  app: FastifyInstance
  /** Start filling the warm pool; call once listening. */
  start(): void
  /** Refuse new work, let running executions finish within the grace time (then stop them), close everything. */
  shutdown(): Promise<void>
  /** The session service (its `stats()` for benches and tests). */
  sessions: SessionService
  /** What the start-up reconciliation found and cleaned. */
  reconciled: {
    executionsFailed: number
    /** Sessions an earlier process held HOT or WARM, now COLD (their last save remains). */
    sessionsCold: number
    workdirs: number
    cgroups: number
  }
}

/** Options of `composeServer` beyond the config. */
export interface ComposeOptions {
  logger: PinoLogger
  /** Sandbox workdirs and shared files; default `/var/lib/hutch/server` as root. */
  sandboxStateDir?: string
  /** cgroup parent of the server's runs; default `hutch-server`. */
  cgroupParent?: string
}

/**
 * Sandbox starts in flight per warm pool (the pool's own default is 2). A run that finds its pool
 * empty waits for the next start to land; with more of them in flight a burst drains the pool
 * less deep (seen here, 16 trivial runs at a time on 2 cores, three interleaved rounds: p99 186,
 * 190 and 162 ms with 4, against 242, 223 and 182 with 2).
 */
const sandboxStartsInFlight = 4

/**
 * Wires the server from its config: database (migrated), storage, sandbox backend, warm pool,
 * run queue, execution service and the HTTP app. On start it reconciles: executions left
 * unfinished by a crash become `failed`, and orphaned workdirs and cgroups are removed.
 */
export async function composeServer(
  config: HutchConfig,
  options: ComposeOptions,
): Promise<HutchServer> {
  const logger = options.logger
  const database = await createDatabase({
    url: config.databaseUrl,
    poolSize: config.databasePoolSize,
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
  })
  await database.migrate()
  const repository = new ExecutionRepository(database)
  const storage = createStorage(config)
  // Saved session state lives apart from the tenants' files, where /v1/files never reaches.
  const sessionStorage = createStorage(config, 'session-state')
  const sessionRepository = new SessionRepository(database)

  const bubblewrap = {
    pythonPath: config.pythonPath,
    // Apart from the CLI's runs: reconciling at start removes every workdir and cgroup here.
    cgroupParent: options.cgroupParent ?? 'hutch-server',
    stateDir: options.sandboxStateDir ?? path.join(defaultSandboxStateDir(), 'server'),
  }
  const backend = await BubblewrapBackend.create({ logger, ...bubblewrap })
  // Before the execution service exists, so no record failed here is one this process still
  // holds the end of (it keeps those it could not write while the database was unavailable).
  const executionsFailed = await repository.failUnfinished(
    'the server stopped before this execution finished',
  )
  const sessionsCold = await sessionRepository.coldAllLive('server restarted')
  const orphans = await backend.removeOrphans()
  if (executionsFailed > 0 || sessionsCold > 0 || orphans.workdirs > 0 || orphans.cgroups > 0) {
    logger.warn(
      { executionsFailed, sessionsCold, ...orphans },
      'reconciled what an earlier server left behind',
    )
  }

  const sandbox = await Sandbox.create({
    backend,
    bubblewrap,
    fastPath: config.fastPath && {
      maxRunsPerServer: config.forkServerMaxRuns,
      maxServerAgeMs: config.forkServerMaxAgeMs,
    },
    logger,
    runtimes: {
      pythonPath: config.pythonPath,
      ...(config.virtualEnv === undefined ? {} : { virtualEnv: config.virtualEnv }),
    },
    defaultLimits: {
      wallTimeMs: config.defaultTimeoutMs,
      cpuTimeMs: config.defaultTimeoutMs,
      memoryBytes: config.defaultMemoryBytes,
      outputBytes: config.defaultOutputBytes,
    },
    maxLimits: {
      wallTimeMs: config.maxTimeoutMs,
      cpuTimeMs: config.maxTimeoutMs,
      memoryBytes: config.maxMemoryBytes,
      outputBytes: config.maxOutputBytes,
      pids: config.maxPids,
      fileSizeBytes: config.maxFileSizeBytes,
    },
    defaultNetwork: config.defaultNetwork,
    outputCaps: {
      maxFiles: config.maxOutputFiles,
      maxFileBytes: config.maxOutputFileBytes,
      maxTotalBytes: config.maxOutputTotalBytes,
    },
  })
  const pool =
    config.maxWarm > 0
      ? new WarmPool<Slot>(
          {
            create: () => sandbox.prepare(),
            destroy: (slot) => slot.release(),
            // A slot whose workdir vanished (an operator cleaning up, a full disk) or whose fork
            // server died is not handed out.
            healthy: (slot) => (slot.healthy?.() ?? true) && fs.existsSync(slot.workdir),
          },
          {
            name: 'sandbox',
            minWarm: config.minWarm,
            maxWarm: config.maxWarm,
            maxIdleMs: config.maxIdleMs,
            startConcurrency: sandboxStartsInFlight,
            logger,
          },
        )
      : undefined
  // On the fast path a sandbox is made for one fork server image: bash, and python code that
  // imports only the standard library, get pools of their own (python's is the one above); other
  // languages take a fresh sandbox per run.
  const languagePools = new Map<PreparedKind, WarmPool<Slot>>()
  if (config.maxWarm > 0 && sandbox.fastPath !== undefined) {
    for (const kind of ['python-stdlib', 'bash'] as const) {
      languagePools.set(
        kind,
        new WarmPool<Slot>(
          {
            create: () => sandbox.prepare(undefined, undefined, kind),
            destroy: (slot) => slot.release(),
            healthy: (slot) => (slot.healthy?.() ?? true) && fs.existsSync(slot.workdir),
          },
          {
            name: kind,
            minWarm: config.minWarm,
            maxWarm: config.maxWarm,
            maxIdleMs: config.maxIdleMs,
            startConcurrency: sandboxStartsInFlight,
            logger,
          },
        ),
      )
    }
  }
  const allPools = [...(pool === undefined ? [] : [pool]), ...languagePools.values()]
  const queue = new RunQueue({
    maxConcurrent: config.maxConcurrentRuns,
    maxDepth: config.maxQueueDepth,
    waitMs: config.queueWaitMs,
  })
  const metrics = new Metrics({
    queue: () => ({ depth: queue.depth, active: queue.active }),
    pools: () => allPools.map((each) => each.stats()),
  })
  const fileUrl = (_namespace: Namespace, filePath: string): string =>
    `${config.publicUrl ?? ''}/v1/files/${filePath.split('/').map(encodeURIComponent).join('/')}`
  const executions = new ExecutionService({
    sandbox,
    repository,
    storage,
    pool,
    languagePools,
    queue,
    observer: metrics,
    logger,
    options: {
      maxInputFiles: config.maxInputFiles,
      maxOutputFileBytes: config.maxOutputFileBytes,
      sandboxWaitMs: config.queueWaitMs,
      allowedNetworks: config.allowedNetworks,
      defaultNetwork: config.defaultNetwork,
      fileUrl,
      recordRetryMs: config.executionRecordRetryMs,
    },
  })

  const sessions = new SessionService({
    openKernel: (kernelOptions) => sandbox.openKernel(kernelOptions),
    repository: sessionRepository,
    states: new SessionStateStore(sessionStorage, {
      maxStateBytes: config.maxOutputTotalBytes,
      maxFileBytes: config.maxOutputFileBytes,
    }),
    storage,
    logger,
    options: {
      defaultWarmAfterMs: config.sessionWarmAfterMs,
      maxWarmAfterMs: config.sessionMaxWarmAfterMs,
      defaultColdAfterMs: config.sessionColdAfterMs,
      maxColdAfterMs: config.sessionMaxColdAfterMs,
      maxHotSessions: config.maxHotSessions,
      maxWarmSessions: config.maxWarmSessions,
      maxSessionsPerNamespace: config.maxSessionsPerNamespace,
      maxOutputFileBytes: config.maxOutputFileBytes,
      fileUrl,
    },
    standby: {
      size: config.sessionStandbyKernels,
      preload: defaultStandbyPreload,
      resolveLimits: (requested) => sandbox.resolveLimits(requested),
    },
  })

  let shuttingDown = false
  const services: AppServices = {
    executions,
    sessions,
    storage,
    pool,
    languagePools: [...languagePools.values()],
    queue,
    metrics,
    auth: new ApiKeyAuth({
      apiKeys: config.apiKeys,
      anonymousUserId: config.anonymousUserId,
      anonymousChatId: config.anonymousChatId,
    }),
    rateLimiter: new RateLimiter(config.rateLimitPerMinute),
    shuttingDown: () => shuttingDown,
    readiness: async () => ({
      database: await database.check().then(
        () => ({ ok: true }),
        (error: unknown) => ({ ok: false, reason: (error as Error).message }),
      ),
      storage: await storage.check(),
      pool: poolReadiness(pool, config.minWarm),
    }),
  }
  const app = await buildApp(services, {
    logger,
    maxBodyBytes: config.maxBodyBytes,
    maxJsonBodyBytes: config.maxJsonBodyBytes,
    maxUploadBytes: config.maxBodyBytes,
    defaultTimeoutMs: config.defaultTimeoutMs,
    maxTimeoutMs: config.maxTimeoutMs,
    maxCodeBytes: config.maxJsonBodyBytes,
    maxInputFiles: config.maxInputFiles,
  })

  return {
    app,
    sessions,
    reconciled: { executionsFailed, sessionsCold, ...orphans },
    start: () => {
      // The fork servers start now, not on the first request; the pool fills from python's.
      for (const fast of Object.values(sandbox.fastPath ?? {})) {
        fast.warmUp().catch((error: unknown) => {
          logger.error({ err: error }, 'a fork server did not start')
        })
      }
      for (const each of allPools) each.start()
      sessions.start()
    },
    async shutdown() {
      if (shuttingDown) return
      shuttingDown = true
      queue.close()
      const graceEnds = Date.now() + config.shutdownGraceMs
      // Every live session is saved to COLD, so the next process restores it.
      const sessionsSaved = sessions.close('the server shut down', config.shutdownGraceMs)
      while (queue.active > 0 && Date.now() < graceEnds) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      if (queue.active > 0) {
        logger.warn(
          { running: queue.active },
          'stopping executions still running after the grace time',
        )
        executions.stopAll('the server shut down')
        while (queue.active > 0) await new Promise((resolve) => setTimeout(resolve, 50))
      }
      await sessionsSaved
      await app.close()
      // Ends of runs the database missed get one last attempt before it closes.
      await executions.close()
      for (const each of allPools) await each.close()
      await sandbox.close()
      await database.close()
      if (storage instanceof S3Storage) storage.close()
      if (sessionStorage instanceof S3Storage) sessionStorage.close()
    },
  }
}

/**
 * S3 when a bucket is configured, else a directory under `dataDir`; one per area. An area other
 * than the tenants' `files` sits beside them: its own directory, or its own key prefix starting
 * with `.`, which no user id can (so no tenant key falls in it).
 */
function createStorage(
  config: HutchConfig,
  area: 'files' | 'session-state' = 'files',
): LocalStorage | S3Storage {
  if (config.s3Bucket === undefined) return new LocalStorage(path.join(config.dataDir, area))
  const { s3AccessKeyId: accessKeyId, s3SecretAccessKey: secretAccessKey } = config
  return new S3Storage({
    bucket: config.s3Bucket,
    region: config.s3Region,
    ...(config.s3Endpoint === undefined ? {} : { endpoint: config.s3Endpoint }),
    forcePathStyle: config.s3ForcePathStyle,
    ...(accessKeyId === undefined || secretAccessKey === undefined
      ? {}
      : { credentials: { accessKeyId, secretAccessKey } }),
    checksumMode: config.s3ChecksumMode,
    keyPrefix: area === 'files' ? config.s3KeyPrefix : `${config.s3KeyPrefix}.${area}/`,
    connectTimeoutMs: Math.min(3_000, config.s3TimeoutMs),
    requestTimeoutMs: config.s3TimeoutMs,
    presignExpiresMs: config.s3PresignExpiresMs,
  })
}

/** Ready while the pool has, or is making, a sandbox (or is meant to keep none). */
function poolReadiness(
  pool: WarmPool<Slot> | undefined,
  minWarm: number,
): { ok: boolean; reason?: string } {
  if (pool === undefined || minWarm === 0) return { ok: true }
  const { warm, starting } = pool.stats()
  return warm + starting > 0
    ? { ok: true }
    : { ok: false, reason: 'no warm sandbox and none starting' }
}
