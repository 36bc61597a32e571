import type { AnySetting } from './setting.ts'
import { settingGroups } from './setting.ts'
import { configEnvVariable, configFlag } from './load-config.ts'
import { ignoredBoxboxVariables, settings } from './settings.ts'

const KiB = 1024
const byteUnits = [
  ['TiB', KiB ** 4],
  ['GiB', KiB ** 3],
  ['MiB', KiB ** 2],
  ['KiB', KiB],
] as const
const msUnits = [
  ['h', 3_600_000],
  ['min', 60_000],
  ['s', 1000],
] as const

const groupTitles: Readonly<Record<(typeof settingGroups)[number], string>> = {
  server: 'Server',
  auth: 'Authentication',
  limits: 'Limits',
  pool: 'Warm pool',
  sessions: 'Sessions',
  storage: 'Storage',
  database: 'Database',
  sandbox: 'Sandbox',
  logging: 'Logging',
}

/**
 * The configuration reference (`docs/config.md`) as Markdown, rendered from the settings table;
 * `scripts/gen-config-docs.ts` formats it with Prettier and writes it.
 */
export function renderConfigDocs(): string {
  const lines = [
    '# Configuration',
    '',
    '<!-- Generated from packages/server/src/config/settings.ts by scripts/gen-config-docs.ts. Do not edit: run `node --conditions=hutch-source scripts/gen-config-docs.ts`. -->',
    '',
    'Every setting has a default. Settings are read from, each overriding the one before: the',
    `defaults, a JSON config file (named by \`${configFlag} <path>\` or \`${configEnvVariable}\`), the`,
    'environment, and command-line flags. Where a setting has several environment variables, the',
    "first one set wins: hutch's own `HUTCH_*` names before boxbox's. Empty variables count as",
    'unset. Relative paths are relative to the config file for values in the file, to the working',
    'directory otherwise. The configuration is validated once at start: every problem is reported',
    'together, and the server exits non-zero.',
    '',
    'The config file holds an object keyed by setting (`null` leaves a setting at its default):',
    '',
    '```json',
    '{ "port": 9000, "apiKeys": ["change-me"], "defaultTimeoutMs": 60000, "allowedNetworks": ["none"] }',
    '```',
    '',
    'Flags take `--name value` or `--name=value`; a boolean flag alone means true and',
    '`--no-name` false; lists are comma-separated, and a list flag may be repeated. Quantities',
    'carry their unit in their name: `…Ms` in milliseconds, `…Bytes` in bytes.',
    '',
    'Without an API key the server listens on loopback only; it refuses to start on any other',
    'address (such as `0.0.0.0`) until at least one key is set.',
  ]

  for (const group of settingGroups) {
    lines.push('', `## ${groupTitles[group]}`, '')
    lines.push(
      '| Key | Environment | Flag | Default | Description |',
      '| --- | --- | --- | --- | --- |',
    )
    for (const [key, entry] of Object.entries(settings as Record<string, AnySetting>)) {
      if (entry.group !== group) continue
      lines.push(`| ${[`\`${key}\``, ...cells(key, entry)].map(escapeCell).join(' | ')} |`)
    }
  }

  lines.push(
    '',
    '## Coming from boxbox',
    '',
    "boxbox's environment works unchanged: `API_KEY`, `API_PORT`, `DATABASE_URL`, the `S3_*`",
    'variables, `POOL_MIN_WARM`, `POOL_MAX_WARM` and `EXECUTION_TIMEOUT` (a Go duration such as',
    '`5m` or `1m30s`) are read as shown above. hutch runs its sandboxes on its own host instead of',
    `Daytona, so ${ignoredBoxboxVariables.map((name) => `\`${name}\``).join(', ')} are accepted`,
    "and ignored. The pool defaults are smaller than boxbox's because local sandboxes start in",
    "milliseconds. boxbox's default timeout was 5 minutes; `EXECUTION_TIMEOUT=5m` keeps it.",
    '',
    '## Example: PostgreSQL and S3',
    '',
    '```sh',
    'DATABASE_URL=postgres://hutch:secret@db.internal:5432/hutch',
    'S3_BUCKET=hutch-files',
    'S3_REGION=eu-west-1',
    'S3_ACCESS_KEY_ID=AKIA...',
    'S3_SECRET_ACCESS_KEY=...',
    '# another S3-compatible server, such as MinIO:',
    'S3_ENDPOINT=http://minio.internal:9000',
    'S3_FORCE_PATH_STYLE=true',
    '# listening beyond loopback needs a key',
    'HUTCH_HOST=0.0.0.0',
    'HUTCH_API_KEYS=first-key,second-key',
    '```',
    '',
  )
  return lines.join('\n')
}

function cells(key: string, entry: AnySetting): string[] {
  if (entry.kind === 'derived') return ['—', '—', `derived: ${entry.rule}`, entry.description]
  const env = entry.env
    .map((variable) =>
      variable.note === undefined
        ? `\`${variable.name}\``
        : `\`${variable.name}\` (${variable.note})`,
    )
    .join(', ')
  const defaultText =
    'text' in entry.default ? entry.default.text : formatValue(key, entry.default.value)
  const secret = !entry.secret
    ? ''
    : entry.redact === undefined
      ? ' Secret: never logged.'
      : ' Logged with its password hidden.'
  return [env || '—', `\`${entry.flag}\``, defaultText, entry.description + secret]
}

function formatValue(key: string, value: unknown): string {
  if (value === undefined) return 'unset'
  if (Array.isArray(value)) {
    return value.length === 0 ? 'none' : value.map((item) => `\`${String(item)}\``).join(', ')
  }
  if (typeof value === 'number') {
    const units = key.endsWith('Bytes') ? byteUnits : key.endsWith('Ms') ? msUnits : []
    const unit = units.find(([, size]) => value >= size && value % size === 0)
    return unit === undefined ? `\`${value}\`` : `\`${value}\` (${value / unit[1]} ${unit[0]})`
  }
  return `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|')
}
