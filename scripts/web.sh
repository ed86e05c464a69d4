#!/usr/bin/env bash
# The site's web server as `make serve` runs it: gunicorn on evalsite.wsgi with WEB_WORKERS sync workers
# (2) at HOST:PORT (127.0.0.1:8000), access log on stdout. Extra arguments go to gunicorn. The annotation
# load test (perf/annotation_load.py) starts the site through this script too, so it measures this server.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/gunicorn evalsite.wsgi --bind "${HOST:-127.0.0.1}:${PORT:-8000}" --workers "${WEB_WORKERS:-2}" \
  --timeout 300 --access-logfile - "$@"
