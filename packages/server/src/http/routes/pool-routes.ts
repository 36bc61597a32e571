import type { FastifyInstance } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { poolCountSchema } from '@hutch/protocol/schemas'
import { AppError } from '../../app-error.ts'
import type { AppServices } from '../app.ts'

/** Warm pool statistics, warm-up and shrink. */
export function poolRoutes(services: AppServices) {
  return function register(instance: FastifyInstance, _options: unknown, done: () => void): void {
    const app = instance.withTypeProvider<ZodTypeProvider>()
    const pool = () => {
      if (services.pool === undefined)
        throw new AppError('not_found', 'this server has no warm pool')
      return services.pool
    }
    app.get('/v1/pool', { schema: { summary: 'Warm pool statistics', tags: ['pool'] } }, () => ({
      // The main pool first (the one warm-up and shrink act on), then one per fast-path language.
      pools: [pool().stats(), ...(services.languagePools ?? []).map((each) => each.stats())],
      queue: { depth: services.queue.depth, active: services.queue.active },
    }))
    app.post(
      '/v1/pool/warm-up',
      {
        schema: {
          summary: 'Raise the warm target and wait for it',
          tags: ['pool'],
          body: poolCountSchema,
        },
      },
      async (request) => {
        const target = pool()
        await target.warmUp(request.body.count ?? target.stats().target)
        return { pools: [target.stats()] }
      },
    )
    app.post(
      '/v1/pool/shrink',
      {
        schema: {
          summary: 'Destroy idle sandboxes down to a count',
          tags: ['pool'],
          body: poolCountSchema,
        },
      },
      async (request) => {
        const target = pool()
        const destroyed = await target.shrink(request.body.count)
        return { destroyed, pools: [target.stats()] }
      },
    )
    done()
  }
}
