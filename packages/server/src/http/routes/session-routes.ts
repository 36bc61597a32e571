import type { FastifyInstance } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import {
  createSessionSchema,
  listSessionsQuerySchema,
  sessionCellSchema,
} from '@hutch/protocol/schemas'
import type { AppServices } from '../app.ts'
import { toHttpError } from '../app.ts'
import { SseStream, wantsEventStream } from '../sse.ts'

const sessionParams = z.object({ id: z.string().min(1).max(64) })

/**
 * `/v1/sessions`: create, get, list, delete, and per session execute (JSON, or SSE on
 * `Accept: text/event-stream`), interrupt and restart. Another namespace's session is a 404.
 */
export function sessionRoutes(services: AppServices) {
  return function register(instance: FastifyInstance, _options: unknown, done: () => void): void {
    const app = instance.withTypeProvider<ZodTypeProvider>()

    app.post(
      '/v1/sessions',
      {
        schema: {
          summary: 'Start a stateful session (a kernel whose variables persist across cells)',
          description:
            'The session starts HOT; it is frozen (WARM) after `warmAfterMs` idle and saved to storage (COLD) after `coldAfterMs` idle or when the server caps HOT/WARM sessions. The next cell brings it back.',
          tags: ['sessions'],
          body: createSessionSchema,
        },
      },
      async (request, reply) => {
        const namespace = services.auth.namespace(request)
        services.rateLimiter.take(namespace.userId)
        const session = await services.sessions.create(namespace, request.body)
        return reply.status(201).send(session)
      },
    )

    app.get(
      '/v1/sessions',
      {
        schema: {
          summary: 'Sessions of the caller’s namespace, newest first',
          tags: ['sessions'],
          querystring: listSessionsQuerySchema,
        },
      },
      (request) =>
        services.sessions.list(services.auth.namespace(request), {
          limit: request.query.limit,
          ...(request.query.cursor === undefined ? {} : { cursor: request.query.cursor }),
        }),
    )

    app.get(
      '/v1/sessions/:id',
      {
        schema: {
          summary: 'One session: its state and latest transitions',
          tags: ['sessions'],
          params: sessionParams,
        },
      },
      (request) => services.sessions.get(services.auth.namespace(request), request.params.id),
    )

    app.delete(
      '/v1/sessions/:id',
      {
        schema: {
          summary: 'Delete a session: its kernel and saved state are removed',
          tags: ['sessions'],
          params: sessionParams,
        },
      },
      async (request, reply) => {
        await services.sessions.delete(services.auth.namespace(request), request.params.id)
        return reply.status(204).send()
      },
    )

    app.post(
      '/v1/sessions/:id/interrupt',
      {
        schema: {
          summary: 'Interrupt the running cell; variables survive',
          tags: ['sessions'],
          params: sessionParams,
        },
      },
      (request) => services.sessions.interrupt(services.auth.namespace(request), request.params.id),
    )

    app.post(
      '/v1/sessions/:id/restart',
      {
        schema: {
          summary: 'Start the interpreter afresh; variables are dropped, files kept',
          tags: ['sessions'],
          params: sessionParams,
        },
      },
      (request) => services.sessions.restart(services.auth.namespace(request), request.params.id),
    )

    app.post(
      '/v1/sessions/:id/execute',
      {
        schema: {
          summary: 'Run a cell in the session',
          description:
            'Cells run one after the other. A WARM session is thawed and a COLD one restored first; `restored` then says what came back and what was lost. Answers the result as JSON, or streams server-sent events (start, stdout, stderr, display, result, error, end, ping) when the client accepts text/event-stream.',
          tags: ['sessions'],
          params: sessionParams,
          body: sessionCellSchema,
        },
      },
      async (request, reply) => {
        const namespace = services.auth.namespace(request)
        services.rateLimiter.take(namespace.userId)
        const { id } = request.params
        if (!wantsEventStream(request.headers.accept)) {
          return services.sessions.execute(namespace, id, request.body)
        }
        const abort = new AbortController()
        const stream = new SseStream(reply)
        // The response closing before it finished means the client went away: the cell stops.
        reply.raw.on('close', () => {
          if (!reply.raw.writableFinished) abort.abort()
        })
        try {
          const result = await services.sessions.execute(namespace, id, request.body, {
            signal: abort.signal,
            onStart: (cellId) => stream.send('start', { id: cellId, sessionId: id }),
            onStdout: (chunk) => stream.send('stdout', { text: chunk.toString('utf8') }),
            onStderr: (chunk) => stream.send('stderr', { text: chunk.toString('utf8') }),
            onDisplay: (bundle) => stream.send('display', { data: bundle }),
          })
          stream.send('result', result)
        } catch (error) {
          const appError = toHttpError(error)
          if (appError.code === 'internal') request.log.error({ err: error }, 'cell failed')
          stream.send('error', {
            code: appError.code,
            message: appError.code === 'internal' ? 'internal error' : appError.message,
            details: appError.code === 'internal' ? {} : appError.details,
            requestId: request.id,
          })
        }
        stream.send('end', {})
        stream.close()
        return reply
      },
    )
    done()
  }
}
