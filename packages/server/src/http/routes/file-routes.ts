import type { FastifyInstance, FastifyReply } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { AppError } from '../../app-error.ts'
import type { StoredFile } from '../../storage/storage.ts'
import type { AppServices, HttpOptions } from '../app.ts'

const pathParams = z.object({ '*': z.string().min(1).max(4096) })

/**
 * Files of the caller's namespace: raw (`PUT /v1/files/{path}`) and multipart
 * (`POST /v1/files`) upload, download as an attachment, list and delete.
 */
export function fileRoutes(services: AppServices, options: HttpOptions) {
  return function register(instance: FastifyInstance, _options: unknown, done: () => void): void {
    const app = instance.withTypeProvider<ZodTypeProvider>()
    // Raw uploads arrive as a stream whatever their type; the storage enforces the size cap.
    // Fastify's own JSON and text parsers would otherwise read such a body whole into memory
    // (up to the upload cap) and hand the storage an object it cannot write.
    app.removeContentTypeParser(['application/json', 'text/plain'])
    app.addContentTypeParser('*', (_request, payload, done) => done(null, payload))

    app.put(
      '/v1/files/*',
      {
        schema: {
          summary: 'Upload one file (the raw request body) to a path',
          tags: ['files'],
          params: pathParams,
        },
        bodyLimit: options.maxUploadBytes,
      },
      async (request, reply) => {
        const namespace = services.auth.namespace(request)
        const body = request.body as AsyncIterable<Uint8Array> | string | Buffer | undefined
        const stored = await services.storage.put(namespace, request.params['*'], body ?? '', {
          maxBytes: options.maxUploadBytes,
        })
        return reply.status(201).send(describe(stored))
      },
    )

    app.post(
      '/v1/files',
      {
        schema: {
          summary: 'Upload files as multipart/form-data (each part’s file name is its path)',
          tags: ['files'],
          querystring: z.object({ dir: z.string().max(4096).optional() }),
        },
      },
      async (request, reply) => {
        if (!request.isMultipart()) {
          throw new AppError('invalid_request', 'send multipart/form-data, or PUT the raw file')
        }
        const namespace = services.auth.namespace(request)
        const stored: StoredFile[] = []
        for await (const part of request.files()) {
          const path =
            request.query.dir === undefined
              ? part.filename
              : `${request.query.dir}/${part.filename}`
          stored.push(
            await services.storage.put(namespace, path, part.file, {
              maxBytes: options.maxUploadBytes,
            }),
          )
          if (part.file.truncated) {
            await services.storage.delete(namespace, path)
            throw new AppError(
              'payload_too_large',
              `${path} is over ${options.maxUploadBytes} bytes`,
            )
          }
        }
        if (stored.length === 0) throw new AppError('invalid_request', 'no file in the upload')
        return reply.status(201).send({ files: stored.map(describe) })
      },
    )

    app.get(
      '/v1/files/*',
      {
        schema: {
          summary: 'Download a file, or with `presign=1` a presigned URL that downloads it',
          description:
            'With `?presign=1` the answer is JSON `{path, size, mediaType, sha256, modifiedAt, url, expiresAt}`, `url` downloading the file straight from S3 (as an attachment) until `expiresAt`: only with S3 storage, else 400.',
          tags: ['files'],
          params: pathParams,
          querystring: z.object({ presign: z.enum(['0', '1', 'true', 'false']).optional() }),
        },
      },
      async (request, reply) => {
        const namespace = services.auth.namespace(request)
        if (request.query.presign === '1' || request.query.presign === 'true') {
          if (services.storage.downloadUrl === undefined) {
            throw new AppError(
              'invalid_request',
              'presigned URLs need S3 storage; download the file without presign',
            )
          }
          const presigned = await services.storage.downloadUrl(namespace, request.params['*'])
          if (presigned === undefined) {
            throw new AppError('not_found', `no file ${request.params['*']}`)
          }
          return { ...describe(presigned.file), url: presigned.url, expiresAt: presigned.expiresAt }
        }
        const found = await services.storage.get(namespace, request.params['*'])
        if (found === undefined) throw new AppError('not_found', `no file ${request.params['*']}`)
        return sendAttachment(reply, found.file, found.body)
      },
    )

    app.delete(
      '/v1/files/*',
      { schema: { summary: 'Delete a file', tags: ['files'], params: pathParams } },
      async (request, reply) => {
        const deleted = await services.storage.delete(
          services.auth.namespace(request),
          request.params['*'],
        )
        if (!deleted) throw new AppError('not_found', `no file ${request.params['*']}`)
        return reply.status(204).send()
      },
    )

    app.get(
      '/v1/files',
      {
        schema: {
          summary: 'Files of the namespace',
          tags: ['files'],
          querystring: z.object({
            prefix: z.string().max(4096).optional(),
            limit: z.coerce.number().int().min(1).max(10_000).optional(),
          }),
        },
      },
      async (request) => {
        const listed = await services.storage.list(services.auth.namespace(request), {
          ...(request.query.prefix === undefined ? {} : { prefix: request.query.prefix }),
          ...(request.query.limit === undefined ? {} : { limit: request.query.limit }),
        })
        return { files: listed.files.map(describe), truncated: listed.truncated }
      },
    )
    done()
  }
}

function describe(file: StoredFile) {
  return {
    path: file.path,
    size: file.size,
    mediaType: file.mediaType,
    sha256: file.sha256,
    modifiedAt: file.modifiedAt,
    url: `/v1/files/${file.path.split('/').map(encodeURIComponent).join('/')}`,
  }
}

/** Sends a stored file so that no browser renders it in hutch's origin. */
export function sendAttachment(
  reply: FastifyReply,
  file: StoredFile,
  body: NodeJS.ReadableStream,
): FastifyReply {
  const name = file.path.split('/').pop() ?? 'file'
  const asciiName = name.replace(/[^\x20-\x7e]|["\\]/g, '_')
  return reply
    .header('content-type', file.mediaType)
    .header('content-length', String(file.size))
    .header(
      'content-disposition',
      `attachment; filename="${asciiName}"; filename*=UTF-8''${encodeURIComponent(name)}`,
    )
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', "default-src 'none'; sandbox")
    .send(body)
}
