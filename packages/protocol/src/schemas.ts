import { z } from 'zod'

// The zod schemas of the wire, apart from the package root so that a program needing only the
// types and constants (the sandbox, the CLI) does not load zod.

/** Limits a caller may ask for on the wire. Each is clamped to the server's maximum. */
export const requestLimitsSchema = z
  .object({
    cpuTimeMs: z.number().int().nonnegative().describe('CPU time of all processes, milliseconds'),
    memoryBytes: z.number().int().nonnegative().describe('Memory of all processes, bytes'),
    pids: z.number().int().nonnegative().describe('Processes and threads at once'),
    outputBytes: z.number().int().nonnegative().describe('stdout plus stderr, bytes'),
    fileSizeBytes: z.number().int().nonnegative().describe('Largest file a run may write, bytes'),
  })
  .partial()
  .strict()
export type RequestLimits = z.infer<typeof requestLimitsSchema>

const networkSchema = z.enum(['none', 'loopback', 'host'])

/** `POST /v1/execute` and the body of a session cell (DESIGN section 5). */
export const executeRequestSchema = z
  .object({
    language: z
      .string()
      .min(1)
      .max(32)
      .describe('python, bash, javascript, typescript, go or an alias'),
    code: z.string().optional().describe('The program; written to `path`'),
    path: z.string().max(4096).optional().describe('File name of the program in the workdir'),
    files: z
      .array(z.string().min(1).max(4096))
      .max(1000)
      .optional()
      .describe('Names of files in the namespace to copy into the workdir'),
    inlineFiles: z
      .record(z.string().min(1).max(4096), z.string())
      .optional()
      .describe('Files given inline: name -> content'),
    stdin: z.string().optional(),
    args: z.array(z.string()).max(256).optional(),
    env: z.record(z.string(), z.string()).optional(),
    timeoutMs: z.number().int().positive().optional().describe('Wall-time limit, milliseconds'),
    limits: requestLimitsSchema.optional(),
    network: networkSchema.optional(),
  })
  .strict()
export type ExecuteRequestBody = z.infer<typeof executeRequestSchema>

/** Query of `GET /v1/executions`. */
export const listExecutionsQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(512).optional(),
  })
  .strict()

/** Body of `POST /v1/pool/warm-up` and `POST /v1/pool/shrink`. */
export const poolCountSchema = z
  .object({ count: z.number().int().min(0).max(1000).optional() })
  .strict()

/** `POST /v1/sessions` (DESIGN section 5). */
export const createSessionSchema = z
  .object({
    language: z.string().min(1).max(32).describe('python, bash or javascript, or an alias'),
    timeoutMs: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Default wall-time limit of each cell, milliseconds'),
    warmAfterMs: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe('Idle time before the session is frozen (WARM), milliseconds'),
    coldAfterMs: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe('Idle time before the session is saved and closed (COLD), milliseconds'),
    limits: requestLimitsSchema.optional(),
  })
  .strict()
export type CreateSessionBody = z.infer<typeof createSessionSchema>

/** `POST /v1/sessions/:id/execute`. */
export const sessionCellSchema = z
  .object({
    code: z.string().describe('The cell'),
    timeoutMs: z.number().int().positive().optional().describe('Wall-time limit, milliseconds'),
  })
  .strict()
export type SessionCellBody = z.infer<typeof sessionCellSchema>

/** Query of `GET /v1/sessions`. */
export const listSessionsQuerySchema = listExecutionsQuerySchema
