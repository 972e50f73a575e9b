#!/bin/sh
# Without arguments (`docker compose up`): train into /models unless both models
# already have a version, so later `up`s exit at once. With arguments
# (`docker compose run --rm trainer --epochs 10`): always train and publish the
# next version. SENTIMENT_TRAIN_ARGS holds flags for every run; arguments come after
# it and win.
set -eu
OUT=${SENTIMENT_MODELS_DIR:-/models}
if [ "$#" -eq 0 ] && ls "$OUT"/imdb_lstm/[0-9]* >/dev/null 2>&1 && ls "$OUT"/imdb_simple_rnn/[0-9]* >/dev/null 2>&1; then
  echo "models already exported in $OUT; nothing to train"
  exit 0
fi
if [ -n "${SENTIMENT_DATA:-}" ] && [ ! -e "$SENTIMENT_DATA" ]; then
  if [ -f "$(dirname "$SENTIMENT_DATA")" ]; then
    # IMDB_DATA_DIR named the tarball itself, so it is mounted where the folder would be.
    SENTIMENT_DATA=$(dirname "$SENTIMENT_DATA")
    export SENTIMENT_DATA
  else
    echo "$SENTIMENT_DATA not mounted; downloading the official dataset"
    unset SENTIMENT_DATA
  fi
fi
# SENTIMENT_TRAIN_ARGS is split into words on purpose.
# shellcheck disable=SC2086
exec python -m training --out "$OUT" ${SENTIMENT_TRAIN_ARGS:-} "$@"
