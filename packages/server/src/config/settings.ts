import path from 'node:path'
import { isNamespaceId, networkModes } from '@hutch/protocol'
import { backendNames, defaultLimits, defaultMaxLimits } from '@hutch/sandbox'
import * as z from 'zod'
import { parseGoDurationMs } from './go-duration.ts'
import type { AnySetting, DerivedSetting, Setting } from './setting.ts'
import { derivedDefault, derivedSetting, setting } from './setting.ts'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const TiB = 1024 * GiB
const secondMs = 1000
const minuteMs = 60 * secondMs
const hourMs = 60 * minuteMs
const dayMs = 24 * hourMs

/** The log levels of pino, plus `silent`. */
export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** Where files live: a local directory, or an S3-compatible bucket. */
export const storageKinds = ['local', 's3'] as const

/** Which database holds the records: a SQLite file, or PostgreSQL. */
export const databaseKinds = ['sqlite', 'postgres'] as const

/** How the S3 client computes request checksums (the AWS SDK's `requestChecksumCalculation`). */
export const s3ChecksumModes = ['when_supported', 'when_required'] as const

/**
 * boxbox's environment variables that hutch does not use (they configure Daytona, which hutch
 * replaces with local sandboxes). They are accepted and ignored, so a boxbox deployment's
 * environment works unchanged.
 */
export const ignoredBoxboxVariables = [
  'DAYTONA_API_KEY',
  'DAYTONA_API_URL',
  'DAYTONA_IMAGE',
] as const

function integer(min: number, max: number): z.ZodNumber {
  return z.number().int().min(min).max(max)
}

const nonEmpty = z.string().trim().min(1, 'must not be empty')

const namespaceId = z
  .string()
  .refine(isNamespaceId, "must be 1-128 letters, digits, '_', '-' or '.', not starting with '.'")

const absolutePath = z
  .string()
  .min(1, 'must not be empty')
  .refine((value) => path.isAbsolute(value), 'must be a path')

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })

function resolvePath(value: unknown, baseDir: string): unknown {
  return typeof value === 'string' && value.trim() !== '' ? path.resolve(baseDir, value) : value
}

function trimTrailingSlashes(value: unknown): unknown {
  return typeof value === 'string' ? value.replace(/\/+$/, '') : value
}

function uniqueItems(value: unknown): unknown {
  return Array.isArray(value) ? [...new Set(value)] : value
}

const postgresUrlPattern = /^postgres(ql)?:\/\//i

/**
 * A PostgreSQL URL is kept as it is; anything else is a SQLite file, given as a path or as a
 * `sqlite:` or `file:` URL, and becomes an absolute path (`:memory:` stays as it is).
 */
function normalizeDatabaseUrl(value: unknown, baseDir: string): unknown {
  if (typeof value !== 'string') return value
  const trimmed = value.trim()
  if (trimmed === '' || trimmed === ':memory:' || postgresUrlPattern.test(trimmed)) return trimmed
  // Another database's URL stays relative, so validation refuses it instead of a SQLite file
  // of that name being created.
  if (/^(?!sqlite:|file:)[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) return trimmed
  const file = trimmed.replace(/^(sqlite|file):(\/\/(?=\/))?/i, '')
  return file === ':memory:' ? file : path.resolve(baseDir, file)
}

const databaseUrlSchema = z
  .string()
  .min(1, 'must not be empty')
  .refine(
    (value) => value === ':memory:' || path.isAbsolute(value) || postgresUrlPattern.test(value),
    'must be a postgres:// URL or a SQLite file (a path, or a sqlite: or file: URL)',
  )

function redactUrlPassword(value: string): string {
  if (!postgresUrlPattern.test(value) || !URL.canParse(value)) return value
  const url = new URL(value)
  if (url.password !== '') url.password = 'redacted'
  for (const name of ['password', 'sslpassword']) {
    if (url.searchParams.has(name)) url.searchParams.set(name, 'redacted')
  }
  return url.href
}

function goDuration(text: string) {
  const valueMs = parseGoDurationMs(text)
  return valueMs === undefined
    ? ({ ok: false, message: `expected a Go duration such as 5m, 30s or 1m30s` } as const)
    : ({ ok: true, value: valueMs } as const)
}

/**
 * Every setting of the server, grouped, with its schema, default, environment variables, flag and
 * description. The config file, the environment, the flags and the reference in `docs/config.md`
 * are all read from this table.
 */
export const settings = {
  // server
  host: setting({
    group: 'server',
    schema: nonEmpty,
    default: '127.0.0.1',
    env: ['HUTCH_HOST'],
    flag: '--host',
    description:
      'Address to listen on. Anything but a loopback address (127.0.0.0/8, ::1, localhost) needs at least one API key.',
  }),
  port: setting({
    group: 'server',
    schema: integer(0, 65_535),
    default: 8080,
    env: ['HUTCH_PORT', 'API_PORT'],
    flag: '--port',
    description: 'TCP port to listen on; 0 picks a free one.',
  }),
  dataDir: setting({
    group: 'server',
    schema: absolutePath,
    default: './.hutch/data',
    env: ['HUTCH_DATA_DIR'],
    flag: '--data-dir',
    description: 'Directory for local state: the SQLite database and the files of local storage.',
    normalize: resolvePath,
  }),
  shutdownGraceMs: setting({
    group: 'server',
    schema: integer(0, 10 * minuteMs),
    default: 10 * secondMs,
    env: ['HUTCH_SHUTDOWN_GRACE_MS'],
    flag: '--shutdown-grace-ms',
    description:
      'On SIGTERM or SIGINT, how long running executions may finish before they are killed.',
  }),
  maxBodyBytes: setting({
    group: 'server',
    schema: integer(1, 16 * GiB),
    default: 64 * MiB,
    env: ['HUTCH_MAX_BODY_BYTES'],
    flag: '--max-body-bytes',
    description: 'Largest request body: file uploads (raw or multipart).',
  }),
  maxJsonBodyBytes: setting({
    group: 'server',
    schema: integer(1, 1 * GiB),
    default: 2 * MiB,
    env: ['HUTCH_MAX_JSON_BODY_BYTES'],
    flag: '--max-json-body-bytes',
    description:
      'Largest JSON request body, such as `POST /v1/execute` with its code and inline files.',
  }),
  publicUrl: setting({
    group: 'server',
    schema: httpUrl.optional(),
    default: undefined,
    env: ['HUTCH_PUBLIC_URL'],
    flag: '--public-url',
    description:
      'Base URL clients reach the server at (`https://hutch.example.com`), used to build the URLs of output files; without it, URLs are paths relative to the server.',
    normalize: trimTrailingSlashes,
  }),

  // auth
  apiKeys: setting({
    group: 'auth',
    schema: z.array(z.string().min(1).max(1024).regex(/^\S+$/, 'must not contain spaces')),
    default: [],
    env: [
      { name: 'HUTCH_API_KEYS', note: 'comma-separated' },
      { name: 'API_KEY', note: 'one key', parse: (text) => ({ ok: true, value: [text.trim()] }) },
    ],
    flag: '--api-keys',
    description:
      'API keys clients send as `X-API-Key` or `Authorization: Bearer`. Without any, the server only listens on loopback. Prefer the environment or the file to the flag, which other local users can see.',
    secret: true,
    normalize: uniqueItems,
  }),
  anonymousUserId: setting({
    group: 'auth',
    schema: namespaceId,
    default: 'anonymous',
    env: ['HUTCH_ANONYMOUS_USER_ID'],
    flag: '--anonymous-user-id',
    description:
      'User id of requests that name no user: keyless requests on loopback and NVIDIA-style requests.',
  }),
  anonymousChatId: setting({
    group: 'auth',
    schema: namespaceId,
    default: 'default',
    env: ['HUTCH_ANONYMOUS_CHAT_ID'],
    flag: '--anonymous-chat-id',
    description: 'Chat id of requests that name no chat.',
  }),

  // limits
  defaultTimeoutMs: setting({
    group: 'limits',
    schema: integer(1, dayMs),
    default: defaultLimits.wallTimeMs,
    env: [
      'HUTCH_DEFAULT_TIMEOUT_MS',
      { name: 'EXECUTION_TIMEOUT', note: 'Go duration: `5m`, `1m30s`', parse: goDuration },
    ],
    flag: '--default-timeout-ms',
    description: 'Wall-clock timeout of a run that asks for none.',
  }),
  maxTimeoutMs: setting({
    group: 'limits',
    schema: integer(1, dayMs),
    default: defaultMaxLimits.wallTimeMs,
    env: ['HUTCH_MAX_TIMEOUT_MS'],
    flag: '--max-timeout-ms',
    description: 'Longest timeout a request may ask for; longer ones are clamped to it.',
  }),
  defaultMemoryBytes: setting({
    group: 'limits',
    schema: integer(1 * MiB, 1 * TiB),
    default: defaultLimits.memoryBytes,
    env: ['HUTCH_DEFAULT_MEMORY_BYTES'],
    flag: '--default-memory-bytes',
    description: 'Memory of a run that asks for none (all its processes together, swap off).',
  }),
  maxMemoryBytes: setting({
    group: 'limits',
    schema: integer(1 * MiB, 1 * TiB),
    default: defaultMaxLimits.memoryBytes,
    env: ['HUTCH_MAX_MEMORY_BYTES'],
    flag: '--max-memory-bytes',
    description: 'Most memory a request may ask for.',
  }),
  defaultOutputBytes: setting({
    group: 'limits',
    schema: integer(0, 64 * GiB),
    default: defaultLimits.outputBytes,
    env: ['HUTCH_DEFAULT_OUTPUT_BYTES'],
    flag: '--default-output-bytes',
    description:
      'stdout and stderr together that a run keeps when it asks for no limit; past it the run is stopped and its output marked truncated.',
  }),
  maxOutputBytes: setting({
    group: 'limits',
    schema: integer(0, 64 * GiB),
    default: defaultMaxLimits.outputBytes,
    env: ['HUTCH_MAX_OUTPUT_BYTES'],
    flag: '--max-output-bytes',
    description: 'Most stdout and stderr a request may ask for.',
  }),
  maxPids: setting({
    group: 'limits',
    schema: integer(1, 32_768),
    default: defaultMaxLimits.pids,
    env: ['HUTCH_MAX_PIDS'],
    flag: '--max-pids',
    description: 'Most processes and threads a request may ask for, alive at once.',
  }),
  maxFileSizeBytes: setting({
    group: 'limits',
    schema: integer(0, 1 * TiB),
    default: defaultMaxLimits.fileSizeBytes,
    env: ['HUTCH_MAX_FILE_SIZE_BYTES'],
    flag: '--max-file-size-bytes',
    description: 'Most a request may ask for as the largest file its run may write.',
  }),
  maxInputFiles: setting({
    group: 'limits',
    schema: integer(0, 100_000),
    default: 100,
    env: ['HUTCH_MAX_INPUT_FILES'],
    flag: '--max-input-files',
    description: 'Most files one request may copy into its sandbox (namespace and inline files).',
  }),
  maxOutputFiles: setting({
    group: 'limits',
    schema: integer(0, 100_000),
    default: 100,
    env: ['HUTCH_MAX_OUTPUT_FILES'],
    flag: '--max-output-files',
    description:
      'Most new or modified files collected from one run; the rest are reported as skipped.',
  }),
  maxOutputFileBytes: setting({
    group: 'limits',
    schema: integer(0, 1 * TiB),
    default: 256 * MiB,
    env: ['HUTCH_MAX_OUTPUT_FILE_BYTES'],
    flag: '--max-output-file-bytes',
    description: 'Largest single file collected from a run.',
  }),
  maxOutputTotalBytes: setting({
    group: 'limits',
    schema: integer(0, 1 * TiB),
    default: 1 * GiB,
    env: ['HUTCH_MAX_OUTPUT_TOTAL_BYTES'],
    flag: '--max-output-total-bytes',
    description: 'All files collected from one run together.',
  }),
  rateLimitPerMinute: setting({
    group: 'limits',
    schema: integer(0, 1_000_000),
    default: 120,
    env: ['HUTCH_RATE_LIMIT_PER_MINUTE'],
    flag: '--rate-limit-per-minute',
    description:
      'Requests one user may make per minute before answers are 429 with `Retry-After`; 0 turns the limit off.',
  }),
  maxQueueDepth: setting({
    group: 'limits',
    schema: integer(0, 100_000),
    default: 64,
    env: ['HUTCH_MAX_QUEUE_DEPTH'],
    flag: '--max-queue-depth',
    description:
      'Runs that may wait for a free slot; past it requests are answered 503 with `Retry-After`. 0 queues nothing.',
  }),
  queueWaitMs: setting({
    group: 'limits',
    schema: integer(0, 10 * minuteMs),
    default: 30 * secondMs,
    env: ['HUTCH_QUEUE_WAIT_MS'],
    flag: '--queue-wait-ms',
    description: 'Longest a queued run waits for a slot before it is answered 503.',
  }),
  maxConcurrentRuns: setting({
    group: 'limits',
    schema: integer(1, 4096),
    default: derivedDefault('number of CPUs', (_values, host) => Math.max(1, host.cpuCount)),
    env: ['HUTCH_MAX_CONCURRENT_RUNS'],
    flag: '--max-concurrent-runs',
    description: 'Runs executing at once; more wait in the queue.',
  }),

  // pool
  minWarm: setting({
    group: 'pool',
    schema: integer(0, 1024),
    default: 2,
    env: ['HUTCH_POOL_MIN_WARM', 'POOL_MIN_WARM'],
    flag: '--pool-min-warm',
    description:
      "Warm sandboxes kept ready per runtime. boxbox's default of 5 is sized for remote Daytona sandboxes; local ones start in milliseconds and cost memory while they wait.",
  }),
  maxWarm: setting({
    group: 'pool',
    schema: integer(0, 4096),
    default: 8,
    env: ['HUTCH_POOL_MAX_WARM', 'POOL_MAX_WARM'],
    flag: '--pool-max-warm',
    description: 'Most warm sandboxes per runtime when demand grows.',
  }),
  maxIdleMs: setting({
    group: 'pool',
    schema: integer(1 * secondMs, dayMs),
    default: 10 * minuteMs,
    env: ['HUTCH_POOL_MAX_IDLE_MS'],
    flag: '--pool-max-idle-ms',
    description:
      'How long a warm sandbox waits unused before it is replaced by a fresh one (or dropped, above the minimum).',
  }),
  fastPath: setting({
    group: 'pool',
    schema: z.boolean(),
    default: true,
    env: ['HUTCH_FAST_PATH'],
    flag: '--fast-path',
    description:
      'Fork python and bash sandboxes from fork servers that have imported numpy, pandas and matplotlib (DESIGN section 4), for runs with network `none` or `loopback`; off, every run starts its own bubblewrap sandbox and interpreter.',
  }),
  forkServerMaxRuns: setting({
    group: 'pool',
    schema: integer(1, 1_000_000),
    default: 5000,
    env: ['HUTCH_FORK_SERVER_MAX_RUNS'],
    flag: '--fork-server-max-runs',
    description:
      'A fork server is replaced after forking this many sandboxes (children share its address layout and hash seed until then). Starting one costs about 1.5 s of CPU (its imports), which a lower count spends more often: at 500, a tenth of the CPU of trivial runs at 100 a second.',
  }),
  forkServerMaxAgeMs: setting({
    group: 'pool',
    schema: integer(1 * secondMs, dayMs),
    default: 10 * minuteMs,
    env: ['HUTCH_FORK_SERVER_MAX_AGE_MS'],
    flag: '--fork-server-max-age-ms',
    description: 'A fork server is replaced after this long.',
  }),

  // sessions
  sessionWarmAfterMs: setting({
    group: 'sessions',
    schema: integer(0, 7 * dayMs),
    default: 2 * minuteMs,
    env: ['HUTCH_SESSION_WARM_AFTER_MS'],
    flag: '--session-warm-after-ms',
    description:
      'Idle time after which a HOT session is frozen (WARM: memory kept, no CPU), for sessions that ask for none.',
  }),
  sessionMaxWarmAfterMs: setting({
    group: 'sessions',
    schema: integer(0, 7 * dayMs),
    default: 1 * hourMs,
    env: ['HUTCH_SESSION_MAX_WARM_AFTER_MS'],
    flag: '--session-max-warm-after-ms',
    description: 'Largest `warmAfterMs` a session may ask for; larger values are clamped.',
  }),
  sessionColdAfterMs: setting({
    group: 'sessions',
    schema: integer(0, 7 * dayMs),
    default: 30 * minuteMs,
    env: ['HUTCH_SESSION_COLD_AFTER_MS'],
    flag: '--session-cold-after-ms',
    description:
      'Idle time after which a session is saved to storage and its sandbox closed (COLD), for sessions that ask for none.',
  }),
  sessionMaxColdAfterMs: setting({
    group: 'sessions',
    schema: integer(0, 7 * dayMs),
    default: 1 * dayMs,
    env: ['HUTCH_SESSION_MAX_COLD_AFTER_MS'],
    flag: '--session-max-cold-after-ms',
    description: 'Largest `coldAfterMs` a session may ask for; larger values are clamped.',
  }),
  maxHotSessions: setting({
    group: 'sessions',
    schema: integer(0, 4096),
    default: 8,
    env: ['HUTCH_MAX_HOT_SESSIONS'],
    flag: '--max-hot-sessions',
    description:
      'HOT sessions kept; past it the least recently used idle ones are frozen (WARM). A session running a cell is never frozen.',
  }),
  maxWarmSessions: setting({
    group: 'sessions',
    schema: integer(0, 4096),
    default: 32,
    env: ['HUTCH_MAX_WARM_SESSIONS'],
    flag: '--max-warm-sessions',
    description:
      'WARM sessions kept; past it the least recently used are saved to storage and closed (COLD).',
  }),
  maxSessionsPerNamespace: setting({
    group: 'sessions',
    schema: integer(1, 100_000),
    default: 16,
    env: ['HUTCH_MAX_SESSIONS_PER_NAMESPACE'],
    flag: '--max-sessions-per-namespace',
    description:
      'Sessions one user and chat may have, whatever their state; creating another answers 409 `too_many_sessions`.',
  }),
  sessionStandbyKernels: setting({
    group: 'sessions',
    schema: integer(0, 64),
    default: 1,
    env: ['HUTCH_SESSION_STANDBY_KERNELS'],
    flag: '--session-standby-kernels',
    description:
      'Python session kernels started ahead with numpy, pandas and matplotlib imported (about 75 MB each, 50 MB more than a bare kernel, counted against the session memory limit): creating a session or restoring a COLD one takes a ready kernel instead of starting one and re-running imports. Each serves one session, one with the default memory, pids, disk, open files and file size limits; a taken one is replaced in the background. They count against `maxHotSessions`. 0 starts every kernel on demand.',
  }),

  // storage
  storage: derivedSetting({
    group: 'storage',
    schema: z.enum(storageKinds),
    description: 'Where files live.',
    rule: '`s3` when `s3Bucket` is set, else `local` (under `dataDir`)',
    derive: (values) => (values['s3Bucket'] === undefined ? 'local' : 's3'),
  }),
  s3Bucket: setting({
    group: 'storage',
    schema: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[^/\s]+$/, 'must be a bucket name, without slashes or spaces')
      .optional(),
    default: undefined,
    env: ['S3_BUCKET'],
    flag: '--s3-bucket',
    description: 'S3 bucket for files; setting it switches storage to S3.',
  }),
  s3Region: setting({
    group: 'storage',
    schema: nonEmpty,
    default: 'us-east-1',
    env: ['S3_REGION'],
    flag: '--s3-region',
    description: 'S3 region.',
  }),
  s3AccessKeyId: setting({
    group: 'storage',
    schema: nonEmpty.optional(),
    default: undefined,
    env: ['S3_ACCESS_KEY_ID'],
    flag: '--s3-access-key-id',
    description:
      "S3 access key id; with `s3SecretAccessKey`, or neither to use the AWS SDK's default credential chain.",
  }),
  s3SecretAccessKey: setting({
    group: 'storage',
    schema: nonEmpty.optional(),
    default: undefined,
    env: ['S3_SECRET_ACCESS_KEY'],
    flag: '--s3-secret-access-key',
    description: 'S3 secret access key. Prefer the environment or the file to the flag.',
    secret: true,
  }),
  s3Endpoint: setting({
    group: 'storage',
    schema: httpUrl.optional(),
    default: undefined,
    env: ['S3_ENDPOINT'],
    flag: '--s3-endpoint',
    description: 'Endpoint of another S3-compatible server (MinIO, Ceph, R2, ...).',
  }),
  s3ForcePathStyle: setting({
    group: 'storage',
    schema: z.boolean(),
    default: derivedDefault(
      '`true` when `s3Endpoint` is set',
      (values) => values['s3Endpoint'] !== undefined,
    ),
    env: ['S3_FORCE_PATH_STYLE'],
    flag: '--s3-force-path-style',
    description:
      'Address buckets as `endpoint/bucket` instead of `bucket.endpoint`; MinIO needs it.',
  }),
  s3ChecksumMode: setting({
    group: 'storage',
    schema: z.enum(s3ChecksumModes),
    default: 'when_supported',
    env: ['S3_CHECKSUM_MODE'],
    flag: '--s3-checksum-mode',
    description:
      'When the S3 client adds request checksums; `when_required` for S3-compatible servers that reject the checksums AWS SDKs send by default.',
  }),
  s3KeyPrefix: setting({
    group: 'storage',
    schema: z
      .string()
      .max(256)
      .regex(/^(?:[A-Za-z0-9._-]+\/)*$/, 'must be empty or path components each ending in a slash')
      .refine((prefix) => !prefix.split('/').some((part) => part === '.' || part === '..'), {
        message: 'must not hold a . or .. component',
      }),
    default: '',
    env: ['S3_KEY_PREFIX'],
    flag: '--s3-key-prefix',
    description:
      'Prefix of every object key (`hutch/`), so that several deployments can share a bucket; keys are `<prefix><userId>/<chatId>/<path>`.',
  }),
  s3TimeoutMs: setting({
    group: 'storage',
    schema: integer(100, 10 * minuteMs),
    default: 30 * secondMs,
    env: ['S3_TIMEOUT_MS'],
    flag: '--s3-timeout-ms',
    description:
      'How long one S3 request may wait for an answer (connecting: at most 3 s) before storage counts as unavailable.',
  }),
  s3PresignExpiresMs: setting({
    group: 'storage',
    schema: integer(1 * secondMs, 7 * dayMs),
    default: 15 * minuteMs,
    env: ['S3_PRESIGN_EXPIRES_MS'],
    flag: '--s3-presign-expires-ms',
    description:
      'How long a presigned download URL (`GET /v1/files/{path}?presign=1`) works; S3 allows at most 7 days.',
  }),

  // database
  database: derivedSetting({
    group: 'database',
    schema: z.enum(databaseKinds),
    description: 'Which database holds executions, sessions, threads and the files index.',
    rule: '`postgres` when `databaseUrl` is a `postgres://` or `postgresql://` URL, else `sqlite`',
    derive: (values) =>
      typeof values['databaseUrl'] === 'string' && postgresUrlPattern.test(values['databaseUrl'])
        ? 'postgres'
        : 'sqlite',
  }),
  databaseUrl: setting({
    group: 'database',
    schema: databaseUrlSchema,
    default: derivedDefault('`<dataDir>/hutch.db`', (values) =>
      path.join(String(values['dataDir']), 'hutch.db'),
    ),
    env: ['DATABASE_URL'],
    flag: '--database-url',
    description:
      'A `postgres://` URL, or a SQLite file (a path, or a `sqlite:` or `file:` URL), resolved to an absolute path.',
    secret: true,
    redact: redactUrlPassword,
    normalize: normalizeDatabaseUrl,
  }),
  databasePoolSize: setting({
    group: 'database',
    schema: integer(1, 1000),
    default: 10,
    env: ['DATABASE_POOL_SIZE'],
    flag: '--database-pool-size',
    description: 'PostgreSQL: connections open at most at once.',
  }),
  databaseConnectTimeoutMs: setting({
    group: 'database',
    schema: integer(100, 10 * minuteMs),
    default: 5 * secondMs,
    env: ['DATABASE_CONNECT_TIMEOUT_MS'],
    flag: '--database-connect-timeout-ms',
    description:
      'PostgreSQL: how long opening a connection, or waiting for a free one, may take before the database counts as unavailable (503).',
  }),
  databaseStatementTimeoutMs: setting({
    group: 'database',
    schema: integer(100, hourMs),
    default: 30 * secondMs,
    env: ['DATABASE_STATEMENT_TIMEOUT_MS'],
    flag: '--database-statement-timeout-ms',
    description:
      'PostgreSQL: how long the server lets one statement run, lock waits included, before the database counts as unavailable (503).',
  }),
  executionRecordRetryMs: setting({
    group: 'database',
    schema: integer(0, dayMs),
    default: 10 * minuteMs,
    env: ['HUTCH_EXECUTION_RECORD_RETRY_MS'],
    flag: '--execution-record-retry-ms',
    description:
      "When the database is unavailable as a run ends, how long the server keeps the run's outcome in memory and retries writing its record (the client gets a 503 that names the execution); after that, or at shutdown, it logs an error and the next start fails the record.",
  }),

  // sandbox
  backend: setting({
    group: 'sandbox',
    schema: z.enum(backendNames),
    default: 'bubblewrap',
    env: ['HUTCH_BACKEND'],
    flag: '--backend',
    description: 'Isolation backend of the sandboxes.',
  }),
  pythonPath: setting({
    group: 'sandbox',
    schema: absolutePath,
    default: '/usr/bin/python3',
    env: ['HUTCH_PYTHON_PATH'],
    flag: '--python-path',
    description: 'Python interpreter of the sandboxes, when `virtualEnv` is not set.',
    normalize: resolvePath,
  }),
  virtualEnv: setting({
    group: 'sandbox',
    schema: absolutePath.optional(),
    default: undefined,
    env: ['HUTCH_VIRTUAL_ENV'],
    flag: '--virtual-env',
    description:
      'A Python virtual environment mounted read-only into the sandboxes, whose `bin/python` runs Python code.',
    normalize: resolvePath,
  }),
  defaultNetwork: setting({
    group: 'sandbox',
    schema: z.enum(networkModes),
    default: 'none',
    env: ['HUTCH_DEFAULT_NETWORK'],
    flag: '--default-network',
    description:
      "Network of a run that asks for none: `none`, `loopback` (the sandbox's own) or `host`. Must be one of `allowedNetworks`.",
  }),
  allowedNetworks: setting({
    group: 'sandbox',
    schema: z.array(z.enum(networkModes)).min(1, 'must allow at least one network mode'),
    default: ['none', 'loopback'],
    env: [{ name: 'HUTCH_ALLOWED_NETWORKS', note: 'comma-separated' }],
    flag: '--allowed-networks',
    description: 'Network modes requests may ask for; others are refused.',
    normalize: uniqueItems,
  }),

  // logging
  logLevel: setting({
    group: 'logging',
    schema: z.enum(logLevels),
    default: 'info',
    env: ['HUTCH_LOG_LEVEL', 'LOG_LEVEL'],
    flag: '--log-level',
    description:
      'Lowest pino level logged: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.',
  }),
  logPretty: setting({
    group: 'logging',
    schema: z.boolean(),
    default: false,
    env: ['HUTCH_LOG_PRETTY'],
    flag: '--log-pretty',
    description: 'Human-readable log lines instead of JSON.',
  }),
} as const satisfies Record<string, AnySetting>

/** The name of a setting. */
export type SettingKey = keyof typeof settings

type ValueOf<S> = S extends Setting<infer T> ? T : S extends DerivedSetting<infer T> ? T : never
type Frozen<T> = T extends readonly (infer Item)[] ? readonly Item[] : T

/** The server's resolved configuration: every setting with its value, deeply frozen. */
export type HutchConfig = {
  readonly [K in SettingKey]: Frozen<ValueOf<(typeof settings)[K]>>
}
