"""The schema of the first service release (jobs, audit, rate_hits), as it was.

Databases made before migrations existed have exactly these tables: they are stamped with this
revision and upgraded from here.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("progress", sa.Double, nullable=False, server_default="0"),
        sa.Column("eta_s", sa.Double),
        sa.Column("frames", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("started_at", sa.Double),
        sa.Column("finished_at", sa.Double),
        sa.Column("expires_at", sa.Double),
        sa.Column("consent", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("retain", sa.Boolean(create_constraint=False), nullable=False, server_default="0"),
        sa.Column("media_path", sa.Text),
        sa.Column("out_dir", sa.Text, nullable=False),
        sa.Column("options", sa.Text, nullable=False, server_default="{}"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("worker_pid", sa.Integer),
        sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="jobs_state_check"),
    )
    op.create_index("jobs_state", "jobs", ["state", "created_at"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("consent", sa.Text),
        sa.Column("job_id", sa.Text),
        sa.Column("detail", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "rate_hits",
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("window_index", sa.BigInteger, primary_key=True),
        sa.Column("hits", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for name in ("rate_hits", "audit", "jobs"):
        op.drop_table(name)
