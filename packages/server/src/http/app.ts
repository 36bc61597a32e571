import multipart from '@fastify/multipart'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { LogController } from 'fastify'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import type { Slot } from '@hutch/sandbox'
import { AppError } from '../app-error.ts'
import type { ExecutionService } from '../executions/execution-service.ts'
import type { RunQueue } from '../executions/run-queue.ts'
import type { SessionService } from '../sessions/session-service.ts'
import type { Metrics } from '../metrics/metrics.ts'
import type { WarmPool } from '../pool/warm-pool.ts'
import type { Storage } from '../storage/storage.ts'
import type { ApiKeyAuth } from './auth.ts'
import type { RateLimiter } from './rate-limiter.ts'
import { boxboxErrorFor } from './compat/index.ts'
import { compatRoutes } from './routes/compat-routes.ts'
import { executionRoutes } from './routes/execution-routes.ts'
import { fileRoutes } from './routes/file-routes.ts'
import { healthRoutes } from './routes/health-routes.ts'
import { poolRoutes } from './routes/pool-routes.ts'
import { sessionRoutes } from './routes/session-routes.ts'

/** Everything the HTTP layer calls. Routes validate, call a service, return data. */
export interface AppServices {
  executions: ExecutionService
  sessions: SessionService
  storage: Storage
  pool: WarmPool<Slot> | undefined
  /** Pools of fast-path sandboxes for one language other than python (bash): listed, not steered. */
  languagePools?: readonly WarmPool<Slot>[]
  queue: RunQueue
  auth: ApiKeyAuth
  rateLimiter: RateLimiter
  metrics: Metrics
  /** Each dependency's health, for /ready. */
  readiness: () => Promise<Record<string, { ok: boolean; reason?: string }>>
  /** True once shutdown began: new work is refused with 503. */
  shuttingDown: () => boolean
}

/** Settings of the HTTP layer. */
export interface HttpOptions {
  maxBodyBytes: number
  maxJsonBodyBytes: number
  maxUploadBytes: number
  defaultTimeoutMs: number
  maxTimeoutMs: number
  maxCodeBytes: number
  maxInputFiles: number
  logger: FastifyBaseLogger | boolean
  /**
   * Longest a client may take to send a whole request, headers and body, milliseconds; default
   * five minutes (Node's own default, which Fastify turns off). Answering may take longer.
   */
  requestTimeoutMs?: number
  /**
   * How long closing the app waits for requests still in flight before it cuts their
   * connections, milliseconds; default three seconds.
   */
  closeGraceMs?: number
}

/** Node's default, which Fastify replaces with none: a body trickled a byte a minute is cut off. */
const defaultRequestTimeoutMs = 5 * 60_000
const defaultCloseGraceMs = 3_000

/** Routes that answer without a key: liveness, readiness, metrics and docs. */
const publicRoutes = new Set(['/', '/health', '/ready', '/metrics', '/openapi.json'])

/**
 * The hutch HTTP app: the native `/v1` API, the boxbox and NVIDIA compatibility routes, health,
 * metrics and docs. Tests drive it with `inject()`; the server entry point listens.
 */
export async function buildApp(
  services: AppServices,
  options: HttpOptions,
): Promise<FastifyInstance> {
  const app = Fastify({
    ...(typeof options.logger === 'boolean'
      ? { logger: options.logger }
      : { loggerInstance: options.logger }),
    bodyLimit: options.maxJsonBodyBytes,
    // Without a deadline a client that sends its body a byte at a time holds a connection and a
    // descriptor forever; enough of them and the server can open no file and start no sandbox.
    requestTimeout: options.requestTimeoutMs ?? defaultRequestTimeoutMs,
    // How often Node looks for requests past that deadline (its default is every 30 s).
    http: { connectionsCheckingInterval: 1_000 },
    requestIdHeader: 'x-request-id',
    // One line per request, written when it is answered (below), not two.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => crypto.randomUUID(),
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>()
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)

  app.setErrorHandler((error, request, reply) => sendError(error, request, reply))
  app.setNotFoundHandler((request, reply) =>
    sendError(
      new AppError('not_found', `no route ${request.method} ${request.url}`),
      request,
      reply,
    ),
  )

  app.addHook('onRequest', (request, _reply, done) => {
    const path = request.url.split('?')[0] ?? ''
    if (publicRoutes.has(path) || path.startsWith('/docs')) return done()
    try {
      services.auth.authenticate(request)
      if (services.shuttingDown()) {
        throw new AppError('server_shutting_down', 'the server is shutting down', {
          retryAfterSeconds: 5,
        })
      }
      done()
    } catch (error) {
      done(error as Error)
    }
  })
  app.addHook('preClose', (done) => {
    // Closing stops Node's request deadlines: a client that stopped sending its body half-way
    // (or reads an answer a byte at a time) would otherwise hold the close, and so a graceful
    // shutdown, forever.
    const server = app.server
    const cut = setTimeout(
      () => server.closeAllConnections(),
      options.closeGraceMs ?? defaultCloseGraceMs,
    )
    cut.unref()
    server.once('close', () => clearTimeout(cut))
    done()
  })
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: request.url,
        statusCode: reply.statusCode,
        responseTimeMs: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request completed',
    )
    services.metrics.httpRequestFinished(
      request.method,
      request.routeOptions.url ?? 'unmatched',
      reply.statusCode,
      reply.elapsedTime,
    )
  })

  await app.register(multipart, {
    limits: { fileSize: options.maxUploadBytes, files: 20, fields: 20, fieldSize: 64 * 1024 },
  })
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'hutch',
        description: 'Sandboxed code execution for AI agents and chat applications',
        version: '0.1.0',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          bearer: { type: 'http', scheme: 'bearer' },
        },
      },
      security: [{ apiKey: [] }, { bearer: [] }],
    },
    transform: jsonSchemaTransform,
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger())

  await app.register(healthRoutes(services))
  await app.register(executionRoutes(services))
  await app.register(sessionRoutes(services))
  await app.register(fileRoutes(services, options))
  await app.register(poolRoutes(services))
  await app.register(compatRoutes(services, options))
  return app
}

/** The native error body; routes of the compatibility shapes answer in their own. */
export function sendError(
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const appError = toHttpError(error)
  if (appError.code === 'internal') {
    request.log.error({ err: error }, 'request failed')
  } else if (appError.code === 'backend_unavailable') {
    // The answer says what failed; the cause (which server, which error) is the operator's.
    request.log.warn({ err: error }, 'a dependency is unavailable')
  }
  const retryAfter = appError.details['retryAfterSeconds']
  if (typeof retryAfter === 'number') void reply.header('retry-after', String(retryAfter))
  const path = request.url.split('?')[0] ?? ''
  if (path === '/execute' || path.startsWith('/executions/')) {
    // The compatibility routes answer in boxbox's error shape, even before they are reached.
    const mapped = boxboxErrorFor(
      appError.code,
      appError.code === 'internal' ? 'internal error' : appError.message,
    )
    return reply.status(mapped.status).send(mapped.body)
  }
  return reply.status(appError.httpStatus).send({
    error: {
      code: appError.code,
      message: appError.code === 'internal' ? 'internal error' : appError.message,
      details: appError.code === 'internal' ? {} : appError.details,
      requestId: request.id,
    },
  })
}

/** Any thrown value as an `AppError`: validation, body limits and unknown errors included. */
export function toHttpError(error: unknown): AppError {
  if (error instanceof AppError) return error
  if (hasZodFastifySchemaValidationErrors(error)) {
    return new AppError('invalid_request', 'the request does not match the schema', {
      issues: error.validation.map((issue) => ({
        path: issue.instancePath,
        message: issue.message,
      })),
    })
  }
  const fastifyError = error as { code?: string; statusCode?: number; message?: string }
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || fastifyError.statusCode === 413) {
    return new AppError('payload_too_large', 'the request body is too large')
  }
  if (fastifyError.statusCode !== undefined && fastifyError.statusCode < 500) {
    return new AppError('invalid_request', fastifyError.message ?? 'bad request')
  }
  return new AppError('internal', 'internal error', {}, { cause: error })
}
