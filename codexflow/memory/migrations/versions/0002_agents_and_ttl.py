"""v2: agent lifecycle states and notes; entries gain an expiry time (ttl).

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("memory_entries") as batch:
        batch.add_column(sa.Column("expires_at", sa.Float(), nullable=True))
        batch.create_index("ix_memory_entries_expires_at", ["expires_at"])
    op.create_table(
        "agent_states",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("transitions", sa.JSON(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
    )
    op.create_table(
        "agent_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_agent_notes_run_id", "agent_notes", ["run_id"])


def downgrade() -> None:
    op.drop_table("agent_notes")
    op.drop_table("agent_states")
    with op.batch_alter_table("memory_entries") as batch:
        batch.drop_index("ix_memory_entries_expires_at")
        batch.drop_column("expires_at")
