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
      : pino({ level: config.logLevel }, bufferedStdout()))
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

/**
 * Standard output for the log, written asynchronously a few kilobytes at a time: a line a request
 * written on its own cost the event loop ~0.25 ms. A line waits at most a second; pino flushes
 * what is pending when the process exits.
 */
function bufferedStdout(): pino.DestinationStream {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 })
  setInterval(() => {
    try {
      destination.flush()
    } catch {
      // Busy writing or closing: the next tick takes it.
    }
  }, 1000).unref()
  return destination
}
