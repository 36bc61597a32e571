import type { Kysely } from 'kysely'

/**
 * What a session needs beyond 0001's table: its settings (limits, idle times), its cell count,
 * where its COLD state is saved, the names a save lost, and its transitions in a table of their
 * own (one row each, so a long-lived session's history never grows one row's write). Every new
 * column has a default, so rows written before keep working.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('sessions').dropColumn('transitions').execute()
  for (const [name, type, fallback] of [
    ['limits', 'text', '{}'],
    ['warm_after_ms', 'integer', 0],
    ['cold_after_ms', 'integer', 0],
    ['execution_count', 'integer', 0],
    ['saved_state', 'text', 'null'],
    ['lost_names', 'text', '[]'],
  ] as const) {
    await db.schema
      .alterTable('sessions')
      .addColumn(name, type, (column) => column.notNull().defaultTo(fallback))
      .execute()
  }
  // Reconciliation at start looks for the sessions a previous process left HOT or WARM.
  await db.schema.createIndex('sessions_state').on('sessions').column('state').execute()

  await db.schema
    .createTable('session_transitions')
    .addColumn('session_id', 'text', (column) =>
      column.notNull().references('sessions.id').onDelete('cascade'),
    )
    .addColumn('position', 'integer', (column) => column.notNull())
    .addColumn('from_state', 'text')
    .addColumn('to_state', 'text', (column) => column.notNull())
    .addColumn('reason', 'text', (column) => column.notNull())
    .addColumn('at', 'text', (column) => column.notNull())
    .addPrimaryKeyConstraint('session_transitions_pkey', ['session_id', 'position'])
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('session_transitions').execute()
  await db.schema.dropIndex('sessions_state').execute()
  for (const name of [
    'limits',
    'warm_after_ms',
    'cold_after_ms',
    'execution_count',
    'saved_state',
    'lost_names',
  ]) {
    await db.schema.alterTable('sessions').dropColumn(name).execute()
  }
  await db.schema
    .alterTable('sessions')
    .addColumn('transitions', 'text', (column) => column.notNull().defaultTo('[]'))
    .execute()
}
