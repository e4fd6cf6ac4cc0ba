#!/usr/bin/env bash
# The project's test command: set up, lint, type-check, run the test suite.
# The storage tests run on SQLite and, when it can be started here, on a throwaway
# PostgreSQL (scripts/postgres.sh; installs it with apt when run as root).
# CALLGATE_REQUIRE_POSTGRES=1 makes a PostgreSQL that cannot start an error (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if [[ -z "${CALLGATE_TEST_POSTGRES_URL:-}" ]]; then
  if url=$(scripts/postgres.sh); then
    export CALLGATE_TEST_POSTGRES_URL=$url
    trap 'scripts/postgres.sh stop' EXIT
  elif [[ "${CALLGATE_REQUIRE_POSTGRES:-0}" == 1 ]]; then
    echo "test.sh: PostgreSQL could not be started" >&2
    exit 1
  else
    echo "test.sh: PostgreSQL not available here; its storage tests will be skipped" >&2
  fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -n 2 "$@"
