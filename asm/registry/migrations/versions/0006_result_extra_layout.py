"""result.extra: one layout for every kind of run (asm.runs.writer)

Match results written before it named their files only under ``extra["files"]``; the report reads
``audio``, ``target_audio``, ``picture`` and ``preset``, so it showed no audio for them. Copy those
paths (and the target's display name) to the common keys; keys already there are kept.

Revision ID: 0006
Revises: 0005
"""

from pathlib import PurePath

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

COMMON_KEYS = {"match_audio": "audio", "target_audio": "target_audio", "picture": "picture", "preset": "preset"}


def common_layout(extra: dict | None, target: str | None) -> dict:
    """A match row's ``extra`` with the common keys filled in from ``extra["files"]``."""
    out = dict(extra or {})
    files = out.get("files") or {}
    for role, key in COMMON_KEYS.items():
        if files.get(role) and key not in out:
            out[key] = files[role]
    if target and "target_label" not in out:
        out["target_label"] = PurePath(target).name
    return out


def upgrade() -> None:
    conn = op.get_bind()
    run = sa.table("run", sa.column("id", sa.Integer), sa.column("kind", sa.String))
    result = sa.table("result", sa.column("id", sa.Integer), sa.column("run_id", sa.Integer),
                      sa.column("target", sa.Text), sa.column("extra", sa.JSON))
    rows = conn.execute(sa.select(result.c.id, result.c.target, result.c.extra)
                        .join(run, run.c.id == result.c.run_id).where(run.c.kind == "match")).all()
    for row_id, target, extra in rows:
        new = common_layout(extra, target)
        if new != (extra or {}):
            conn.execute(result.update().where(result.c.id == row_id).values(extra=new))


def downgrade() -> None:
    pass  # the common keys are additions: older code ignores them
