#!/usr/bin/env bash
# Set up and run the whole test suite: lint, then every test on SQLite, then the database-backed tests
# again on PostgreSQL. Needs PostgreSQL (127.0.0.1:5432, database `test`) and Redis (127.0.0.1:6379);
# installs Debian's chromium (browser tests) and nginx (front-server tests) if they are missing. Extra
# arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
# Debian's chromium for the browser tests, and its nginx for the front-server tests
# (scripts/nginx-locations.conf run for real).
MISSING=""
[ -x /usr/bin/chromium ] || MISSING="chromium"
[ -x /usr/sbin/nginx ] || MISSING="$MISSING nginx"
if [ -n "$MISSING" ]; then
  echo "Installing Debian's $MISSING for the tests..."
  if [ "$(id -u)" = 0 ]; then APT=apt-get; else APT="sudo apt-get"; fi
  # shellcheck disable=SC2086
  $APT update -qq && DEBIAN_FRONTEND=noninteractive $APT install -y -qq $MISSING >/dev/null
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
