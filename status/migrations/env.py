"""Alembic environment: proofwatch runs its migrations in-process, on the connection
`status.migrate.upgrade` hands over (there is no alembic.ini and no URL here)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, render_as_batch=True,
                  transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
