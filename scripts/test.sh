#!/usr/bin/env bash
# Set up and run the whole test suite: lint, then every test on SQLite, then the database-backed tests
# again on PostgreSQL. Needs PostgreSQL (127.0.0.1:5432, database `test`) and Redis (127.0.0.1:6379);
# installs Debian's chromium for the browser tests if it is missing. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
if [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium for the browser tests..."
  if [ "$(id -u)" = 0 ]; then APT=apt-get; else APT="sudo apt-get"; fi
  $APT update -qq && DEBIAN_FRONTEND=noninteractive $APT install -y -qq chromium >/dev/null
fi
./scripts/services.sh
PY=.venv/bin/python
export EVALSITE_DATA_DIR=${EVALSITE_DATA_DIR:-$PWD/var/test}
# Jobs that tests start outside a worker go to a Redis database of their own; the worker tests use it.
export CELERY_BROKER_URL=${TEST_CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (pure modules)"
.venv/bin/mypy evalsite/spreadsheet.py generation/loaders.py generation/videofiles.py generation/demo_clips.py metrics/video metrics/stats
echo "== pytest on SQLite"
$PY -m pytest "$@"
echo "== pytest on PostgreSQL (tests that use the database)"
EVALSITE_ONLY_DB_TESTS=1 DATABASE_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test} $PY -m pytest -m "not browser" -p no:cacheprovider "$@"
