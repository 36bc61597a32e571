import * as z from 'zod'

/** The groups settings are documented in, in the order the reference lists them. */
export const settingGroups = [
  'server',
  'auth',
  'limits',
  'pool',
  'sessions',
  'storage',
  'database',
  'sandbox',
  'logging',
] as const

/** A group of settings. */
export type SettingGroup = (typeof settingGroups)[number]

/** A value read from text (an environment variable or a flag), or why it could not be read. */
export type TextValue =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly message: string }

/** An environment variable a setting is read from. */
export interface EnvVariable {
  readonly name: string
  /** Reads the variable's text; without it, the text is read by the setting's type. */
  readonly parse?: (text: string) => TextValue
  /** How this variable differs from the others, for the reference (`Go duration, e.g. 5m`). */
  readonly note?: string
}

/** A default computed from the other resolved settings and the host. */
export interface DerivedDefault<T> {
  /** How the reference describes the default (`number of CPUs`). */
  readonly text: string
  readonly derive: (values: Readonly<Record<string, unknown>>, host: HostFacts) => T
}

/** What defaults may depend on besides other settings. */
export interface HostFacts {
  /** CPUs available to this process (`os.availableParallelism()`). */
  readonly cpuCount: number
}

/** How text from the environment or a flag becomes a value: by the type of the setting's schema. */
export type TextKind = 'string' | 'number' | 'boolean' | 'list'

/** What a setting declares: its schema, default, and the names it is read under. */
export interface SettingOptions<T> {
  readonly group: SettingGroup
  readonly schema: z.ZodType<T>
  readonly default: NoInfer<T> | DerivedDefault<NoInfer<T>>
  /** Environment variables, highest priority first: the first one set wins. */
  readonly env?: readonly (string | EnvVariable)[]
  /** The command-line flag, `--kebab-case`. */
  readonly flag: `--${string}`
  readonly description: string
  /** Never logged or echoed in errors; `redactConfig` hides it. */
  readonly secret?: boolean
  /** Hides the secret part of a value in `redactConfig` (default: the whole value). */
  readonly redact?: (value: NoInfer<T>) => NoInfer<T>
  /**
   * Normalizes a value before validation, given the directory relative paths are relative to:
   * the config file's directory for values from the file, the working directory otherwise.
   */
  readonly normalize?: (value: unknown, baseDir: string) => unknown
}

/** A setting a user can give: in the config file, the environment or a flag. */
export interface Setting<T> {
  readonly kind: 'setting'
  readonly group: SettingGroup
  readonly schema: z.ZodType<T>
  readonly default: { readonly value: T } | DerivedDefault<T>
  readonly env: readonly EnvVariable[]
  readonly flag: `--${string}`
  readonly description: string
  readonly secret: boolean
  readonly textKind: TextKind
  readonly redact: ((value: T) => T) | undefined
  readonly normalize: ((value: unknown, baseDir: string) => unknown) | undefined
}

/** A value no one sets: it follows from other settings (`storage` is `s3` when a bucket is set). */
export interface DerivedSetting<T> {
  readonly kind: 'derived'
  readonly group: SettingGroup
  readonly schema: z.ZodType<T>
  readonly description: string
  /** How the reference describes the rule. */
  readonly rule: string
  readonly derive: (values: Readonly<Record<string, unknown>>) => T
}

/** Any entry of the settings table. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a table of settings of every type
export type AnySetting = Setting<any> | DerivedSetting<any>

/** Declares a setting: its schema and default, its environment variables and flag, its text. */
export function setting<T>(options: SettingOptions<T>): Setting<T> {
  return Object.freeze({
    kind: 'setting',
    group: options.group,
    schema: options.schema,
    default: isDerivedDefault(options.default) ? options.default : { value: options.default },
    env: Object.freeze(
      (options.env ?? []).map((variable) =>
        typeof variable === 'string' ? { name: variable } : variable,
      ),
    ),
    flag: options.flag,
    description: options.description,
    secret: options.secret ?? false,
    textKind: textKindOf(options.schema),
    redact: options.redact,
    normalize: options.normalize,
  })
}

/** Declares a value that follows from other settings. */
export function derivedSetting<T>(options: {
  readonly group: SettingGroup
  readonly schema: z.ZodType<T>
  readonly description: string
  readonly rule: string
  readonly derive: (values: Readonly<Record<string, unknown>>) => T
}): DerivedSetting<T> {
  return Object.freeze({ kind: 'derived', ...options })
}

/** A default computed when the configuration is resolved. */
export function derivedDefault<T>(
  text: string,
  derive: (values: Readonly<Record<string, unknown>>, host: HostFacts) => T,
): DerivedDefault<T> {
  return Object.freeze({ text, derive })
}

function isDerivedDefault<T>(value: T | DerivedDefault<T>): value is DerivedDefault<T> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    'derive' in value &&
    typeof value.derive === 'function'
  )
}

function textKindOf(schema: z.ZodType): TextKind {
  let inner: z.ZodType = schema
  for (;;) {
    if (inner instanceof z.ZodOptional || inner instanceof z.ZodDefault) {
      inner = inner.unwrap() as z.ZodType
    } else if (inner instanceof z.ZodPipe) {
      inner = inner.in as z.ZodType
    } else break
  }
  if (inner instanceof z.ZodNumber) return 'number'
  if (inner instanceof z.ZodBoolean) return 'boolean'
  if (inner instanceof z.ZodArray) return 'list'
  return 'string'
}

const booleanWords: Readonly<Record<string, boolean>> = {
  true: true,
  false: false,
  '1': true,
  '0': false,
  yes: true,
  no: false,
  on: true,
  off: false,
}

/**
 * Reads text by the kind of its setting: numbers in decimal, booleans as true/false, 1/0,
 * yes/no or on/off, lists comma-separated. `echo` is false for secrets, whose text never appears
 * in a message.
 */
export function parseText(kind: TextKind, text: string, echo: boolean): TextValue {
  const trimmed = text.trim()
  const shown = echo ? ` ${JSON.stringify(trimmed.slice(0, 60))}` : ''
  switch (kind) {
    case 'number':
      return /^[-+]?\d+(\.\d+)?$/.test(trimmed)
        ? { ok: true, value: Number(trimmed) }
        : { ok: false, message: `expected a number, got${shown || ' something else'}` }
    case 'boolean': {
      const value = booleanWords[trimmed.toLowerCase()]
      return value === undefined
        ? { ok: false, message: `expected true or false, got${shown || ' something else'}` }
        : { ok: true, value }
    }
    case 'list':
      return { ok: true, value: splitList(trimmed) }
    case 'string':
      return { ok: true, value: trimmed }
  }
}

/** Items of a comma-separated list, trimmed, empty ones dropped. */
export function splitList(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
}
