#!/usr/bin/env bash
# Local stack without Docker: the TF-Serving-compatible model server, the gateway's
# HTTP server (granian) and its gRPC server, reading deploy/tfserving/ like the compose deployment
# does, and nginx in front of the HTTP API with the compose edge's config.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PY:-.venv/bin/python}
MODELS_DIR=${MODELS_DIR:-models}
HTTP_PORT=${HTTP_PORT:-8000}                  # the edge (nginx): the public HTTP port
HTTPS_PORT=${HTTPS_PORT:-8443}                # the edge's HTTPS port, with SENTIMENT_TLS_DIR
GATEWAY_HTTP_PORT=${GATEWAY_HTTP_PORT:-8001}  # the gateway's HTTP server, behind the edge
GRPC_PORT=${GRPC_PORT:-8600}
MODEL_SERVER_PORT=${MODEL_SERVER_PORT:-8500}
MODEL_SERVER_REST_PORT=${MODEL_SERVER_REST_PORT:-8501}
RUN_DIR=${RUN_DIR:-.run}
# The same rollout file the compose file mounts: edits take effect within a second.
export GATEWAY_ROLLOUTS_FILE=${GATEWAY_ROLLOUTS_FILE:-deploy/rollouts/rollouts.yaml}

mkdir -p "$RUN_DIR"
rm -rf "$RUN_DIR/metrics" && mkdir -p "$RUN_DIR/metrics"

"$PY" -m serving.model_server \
  --port "$MODEL_SERVER_PORT" --rest_api_port "$MODEL_SERVER_REST_PORT" \
  --model_config_file deploy/tfserving/models.config \
  --model_config_file_poll_wait_seconds 60 \
  --base_path_map "/models=$MODELS_DIR" \
  --enable_batching --batching_parameters_file deploy/tfserving/batching_parameters.txt \
  --xla_cpu_compilation_enabled=true \
  --monitoring_config_file deploy/tfserving/monitoring.config \
  --access_log \
  >"$RUN_DIR/model_server.log" 2>&1 &
MODEL_SERVER_PID=$!
trap 'kill -TERM $MODEL_SERVER_PID 2>/dev/null; wait $MODEL_SERVER_PID 2>/dev/null' EXIT

echo "starting the model server (log $RUN_DIR/model_server.log)..."
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$MODEL_SERVER_REST_PORT/v1/models/imdb_simple_rnn" >/dev/null && break
  kill -0 $MODEL_SERVER_PID 2>/dev/null || { tail -20 "$RUN_DIR/model_server.log"; exit 1; }
  sleep 0.5
done

PROMETHEUS_MULTIPROC_DIR="$RUN_DIR/metrics" \
GATEWAY_MODEL_SERVER="127.0.0.1:$MODEL_SERVER_PORT" \
GATEWAY_MODELS_DIR="$MODELS_DIR" \
GATEWAY_GRPC_PORT="$GRPC_PORT" \
GATEWAY_GRPC_REFLECTION="${GATEWAY_GRPC_REFLECTION:-true}" \
  "$PY" -m serving.gateway.api.grpc_server >"$RUN_DIR/grpc_gateway.log" 2>&1 &
GRPC_PID=$!
trap 'kill -TERM $GRPC_PID $MODEL_SERVER_PID 2>/dev/null; wait $GRPC_PID $MODEL_SERVER_PID 2>/dev/null' EXIT

# The edge: deploy/edge/start.sh, as in the compose file, on loopback ports. HTTPS as well
# when SENTIMENT_TLS_DIR names a folder with tls.crt and tls.key.
# Its log is appended to: nginx opens /dev/stdout (its access log) anew, in append mode, and
# its error log, the inherited stderr, would otherwise write over the access lines.
: >"$RUN_DIR/edge.log"
EDGE_LISTEN="127.0.0.1:$HTTP_PORT" EDGE_UPSTREAM="127.0.0.1:$GATEWAY_HTTP_PORT" \
EDGE_HTTPS_LISTEN="127.0.0.1:$HTTPS_PORT" EDGE_HTTPS_PORT="$HTTPS_PORT" \
EDGE_TLS_DIR="${SENTIMENT_TLS_DIR:+$(cd "${SENTIMENT_TLS_DIR}" && pwd)}" \
EDGE_PREFIX="$(cd "$RUN_DIR" && pwd)/edge/" \
  sh deploy/edge/start.sh >>"$RUN_DIR/edge.log" 2>&1 &
EDGE_PID=$!
trap 'kill -TERM $EDGE_PID $GRPC_PID $MODEL_SERVER_PID 2>/dev/null; wait $EDGE_PID $GRPC_PID $MODEL_SERVER_PID 2>/dev/null' EXIT

cat <<MSG
sentiment service on http://127.0.0.1:$HTTP_PORT
  curl -s http://127.0.0.1:$HTTP_PORT/v1/sentiment -H 'Content-Type: application/json' -d '{"text": "A wonderful film."}'
  API: http://127.0.0.1:$HTTP_PORT/openapi.yaml   readiness: /readyz   metrics: http://127.0.0.1:$GATEWAY_HTTP_PORT/metrics
  gRPC API: 127.0.0.1:$GRPC_PORT   e.g. .venv/bin/python -m serving.client predict "A wonderful film."
  model server: gRPC 127.0.0.1:$MODEL_SERVER_PORT, REST http://127.0.0.1:$MODEL_SERVER_REST_PORT
  edge (nginx) log: $RUN_DIR/edge.log; the gateway itself: http://127.0.0.1:$GATEWAY_HTTP_PORT
MSG
[ -z "${SENTIMENT_TLS_DIR:-}" ] || echo "  HTTPS: https://127.0.0.1:$HTTPS_PORT (certificate from $SENTIMENT_TLS_DIR)"

PROMETHEUS_MULTIPROC_DIR="$RUN_DIR/metrics" \
GATEWAY_MODEL_SERVER="127.0.0.1:$MODEL_SERVER_PORT" \
GATEWAY_MODELS_DIR="$MODELS_DIR" \
GATEWAY_HTTP_PORT="$GATEWAY_HTTP_PORT" \
  "$PY" -m serving.gateway.api.http_server
