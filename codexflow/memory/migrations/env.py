"""Alembic's entry point for codexflow's memory database: runs on the connection it is given."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
# Batch mode rebuilds tables where SQLite cannot alter them in place.
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
