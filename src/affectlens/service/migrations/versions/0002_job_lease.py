"""Jobs get an owner and a lease: ``owner``, ``lease_token``, ``lease_until``.

Jobs a previous server left ``running`` have no lease: the first server on the upgraded database
re-queues them (they resume from their saved frames), as before.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.Text))
        batch.add_column(sa.Column("lease_token", sa.Text))
        batch.add_column(sa.Column("lease_until", sa.Double))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name in ("lease_until", "lease_token", "owner"):
            batch.drop_column(name)
