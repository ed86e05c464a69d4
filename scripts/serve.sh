#!/usr/bin/env bash
# Set up and serve the site on its embedded defaults: SQLite, media under ./var, a filesystem message
# broker and one local Celery worker (cpu and gpu queues) in a separate process. Ctrl-C stops both.
# Options: --demo (add synthetic demo clips), --benchmark PATH (the Step-Video-T2V-Eval file when
# ../shared/benchmarks is not beside the checkout). HOST and PORT choose the address (127.0.0.1:8000).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
PY=.venv/bin/python
$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput --verbosity 0
$PY manage.py setup_site "$@"

.venv/bin/celery -A evalsite worker -Q cpu,gpu --concurrency "${WORKER_CONCURRENCY:-1}" --loglevel INFO \
  >> "${EVALSITE_DATA_DIR:-var}/worker.log" 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT INT TERM
echo "Worker started (pid $worker, log ${EVALSITE_DATA_DIR:-var}/worker.log)."
echo "Serving on http://${HOST:-127.0.0.1}:${PORT:-8000}/"
./scripts/web.sh
