#!/usr/bin/env bash
# Entry point of the LabelCast image: one image, three ways to run it.
#
#   (no arguments) | web [GUNICORN ARGS...]   the web process: gunicorn serving
#                                             backend.app:create_app() with the hooks of
#                                             backend/gunicorn_config.py; extra arguments go
#                                             to gunicorn before the app
#   worker [ARGS...]                          `labelcast worker ARGS...`, the GPU process
#   anything else                             run as given, e.g. `labelcast doctor`, `bash`
#
# The web process reads from the environment:
#   PORT              port to listen on (default 9090), on all interfaces
#   GUNICORN_WORKERS  worker processes (default 2)
#   GUNICORN_THREADS  threads per worker process (default 4)
#   GUNICORN_TIMEOUT  seconds a request may take before its worker is restarted (default 60)
#   LOG_LEVEL         gunicorn's log level as well as LabelCast's (default INFO)
# GUNICORN_CMD_ARGS, read by gunicorn itself, can add any other gunicorn setting.
set -euo pipefail

web() {
    exec gunicorn \
        --config python:backend.gunicorn_config \
        --bind "0.0.0.0:${PORT:-9090}" \
        --workers "${GUNICORN_WORKERS:-2}" \
        --threads "${GUNICORN_THREADS:-4}" \
        --timeout "${GUNICORN_TIMEOUT:-60}" \
        --log-level "${LOG_LEVEL:-info}" \
        --access-logfile - \
        --worker-tmp-dir /dev/shm \
        "$@" \
        'backend.app:create_app()'
}

if [ "$#" -eq 0 ]; then
    web
fi

case "$1" in
    web)
        shift
        web "$@"
        ;;
    worker)
        shift
        exec labelcast worker "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
