import pino from 'pino'
import type { HutchConfig } from './config/index.ts'
import { assertSafeBinding, isLoopbackHost, redactConfig } from './config/index.ts'
import type { ComposeOptions, HutchServer } from './compose.ts'
import { composeServer } from './compose.ts'

/** A listening server. */
export interface RunningServer extends HutchServer {
  /** The address it listens on, such as `http://127.0.0.1:8080`. */
  url: string
}

/**
 * Starts hutch: checks that the binding is safe (no key, no listening beyond loopback),
 * composes the services, listens, and starts the warm pool.
 */
export async function startServer(
  config: HutchConfig,
  options: Partial<ComposeOptions> = {},
): Promise<RunningServer> {
  assertSafeBinding(config)
  const logger =
    options.logger ??
    (config.logPretty
      ? pino({
          level: config.logLevel,
          transport: { target: 'pino/file', options: { destination: 2 } },
        })
      : // Written asynchronously (a line a request written synchronously cost the event loop
        // ~0.3 ms); pino flushes what is pending when the process exits.
        pino({ level: config.logLevel }, pino.destination({ dest: 1, sync: false })))
  logger.info({ config: redactConfig(config) }, 'starting hutch')
  if (config.apiKeys.length === 0) {
    logger.warn(
      { host: config.host },
      `no API key is configured: listening on loopback only (${config.host}), every request in the anonymous namespace`,
    )
  }
  const server = await composeServer(config, { ...options, logger })
  const url = await server.app.listen({ host: config.host, port: config.port })
  server.start()
  logger.info({ url, loopbackOnly: isLoopbackHost(config.host) }, 'hutch is listening')
  return { ...server, url }
}
