#!/bin/sh
# Runs the gateway's two front ends in one container: the gRPC server in the
# background and the HTTP server (granian) in the foreground. SIGTERM reaches both; the
# container stops when either exits.
set -eu
mkdir -p "${PROMETHEUS_MULTIPROC_DIR:-/tmp/metrics}"
python -m serving.gateway.api.grpc_server &
GRPC_PID=$!
python -m serving.gateway.api.http_server &
HTTP_PID=$!
trap 'kill -TERM $GRPC_PID $HTTP_PID 2>/dev/null' TERM INT
# wait returns when a child exits or a signal arrives; then stop the other one too.
wait $HTTP_PID || true
kill -TERM $GRPC_PID $HTTP_PID 2>/dev/null || true
wait
