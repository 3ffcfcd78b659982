"""shadow_suggestions: a shadow assist's cards, for production vs shadow agreement (no text)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=80), nullable=False),
        sa.Column("suggestion_id", sa.String(length=80), nullable=False),
        sa.Column("trigger_segment_ids", sa.JSON(), nullable=False),
        sa.Column("abstained", sa.Boolean(), nullable=False),
        sa.Column("cited", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_suggestions")),
        sa.UniqueConstraint("event_id", name=op.f("uq_shadow_suggestions_event_id")),
    )
    with op.batch_alter_table("shadow_suggestions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shadow_suggestions_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_shadow_suggestions_variant"), ["variant"], unique=False)
        batch_op.create_index(batch_op.f("ix_shadow_suggestions_at"), ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("shadow_suggestions")
