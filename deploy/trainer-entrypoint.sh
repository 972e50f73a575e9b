#!/bin/sh
# Train into /models unless both models already have a version: `docker compose up`
# trains once, later runs exit at once. Extra arguments go to `python -m training`.
set -eu
OUT=${SENTIMENT_MODELS_DIR:-/models}
if ls "$OUT"/imdb_lstm/[0-9]* >/dev/null 2>&1 && ls "$OUT"/imdb_simple_rnn/[0-9]* >/dev/null 2>&1; then
  echo "models already exported in $OUT; nothing to train"
  exit 0
fi
if [ -n "${SENTIMENT_DATA:-}" ] && [ ! -e "$SENTIMENT_DATA" ]; then
  echo "$SENTIMENT_DATA not mounted; downloading the official dataset"
  unset SENTIMENT_DATA
fi
exec python -m training --out "$OUT" "$@"
