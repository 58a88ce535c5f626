#!/bin/sh
# Regenerates the initial migration from mailer/models.py. Only while no database in use
# predates it; after the first release, add revisions instead.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f mailer/migrations/versions/0001_initial_schema.py
.venv/bin/python - "$tmp" <<'PY'
import sys
from alembic import command
from mailer.migrations import alembic_config
command.revision(alembic_config(f"sqlite:///{sys.argv[1]}/gen.db"), message="initial schema",
                 autogenerate=True, rev_id="0001")
PY
rm -rf "$tmp"
