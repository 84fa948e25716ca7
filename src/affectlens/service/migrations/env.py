"""Alembic environment of the service database: run on the connection that
:func:`affectlens.service.db.migrate` passes in ``config.attributes["connection"]``."""

from alembic import context

from affectlens.service.db import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
