#!/bin/sh
# Starts the edge (nginx) from the files beside this script: docker-compose.yml, the
# Kubernetes Deployment and `make run` (deploy/local/run.sh) all run it. The files are
# rendered into nginx's writable prefix with the settings below, so the mounted copies
# stay read-only; @NAME@ in them is the variable EDGE_NAME.
#
#   EDGE_LISTEN        plain HTTP address                                  8080
#   EDGE_UPSTREAM      the gateway's HTTP server                           gateway:8000
#   EDGE_RATE_LIMIT    requests a second per client (its API key, else     100
#                      its address), and the burst above it                EDGE_RATE_BURST=200
#   EDGE_TLS_DIR       a folder with tls.crt (chain) and tls.key: HTTPS    unset: no HTTPS
#   EDGE_HTTPS_LISTEN  HTTPS address                                       8443
#   EDGE_HTTP          with HTTPS, what the plain port does: "serve" the   serve
#                      API as well, or "redirect" to HTTPS (probes stay)
#   EDGE_HTTPS_PORT    the public HTTPS port redirects name                443
#   EDGE_PREFIX        nginx's prefix: pid, temporary files, rendered conf /tmp/
set -eu

source_dir=$(cd "$(dirname "$0")" && pwd)
prefix=${EDGE_PREFIX:-/tmp/}
conf_dir="${prefix%/}/edge-conf"

EDGE_LISTEN=${EDGE_LISTEN:-8080}
EDGE_UPSTREAM=${EDGE_UPSTREAM:-gateway:8000}
EDGE_RATE_LIMIT=${EDGE_RATE_LIMIT:-100}
EDGE_RATE_BURST=${EDGE_RATE_BURST:-200}
EDGE_HTTPS_LISTEN=${EDGE_HTTPS_LISTEN:-8443}
EDGE_HTTP=${EDGE_HTTP:-serve}
EDGE_HTTPS_PORT=${EDGE_HTTPS_PORT:-443}
EDGE_TLS_DIR=${EDGE_TLS_DIR:-}

fail() {
  echo "edge: $*" >&2
  exit 2
}

whole_number() {
  case $2 in
    '' | *[!0-9]*) fail "$1=$2: must be a whole number" ;;
  esac
}
whole_number EDGE_RATE_LIMIT "$EDGE_RATE_LIMIT"
whole_number EDGE_RATE_BURST "$EDGE_RATE_BURST"
whole_number EDGE_HTTPS_PORT "$EDGE_HTTPS_PORT"

servers="server-http.conf"
if [ -n "$EDGE_TLS_DIR" ]; then
  for file in tls.crt tls.key; do
    [ -r "$EDGE_TLS_DIR/$file" ] || fail "EDGE_TLS_DIR=$EDGE_TLS_DIR: no readable $file in it"
  done
  case $EDGE_HTTP in
    serve) servers="server-http.conf server-https.conf" ;;
    redirect) servers="server-http-redirect.conf server-https.conf" ;;
    *) fail "EDGE_HTTP=$EDGE_HTTP: must be serve or redirect" ;;
  esac
elif [ "$EDGE_HTTP" != serve ]; then
  fail "EDGE_HTTP=$EDGE_HTTP needs HTTPS: set EDGE_TLS_DIR"
fi

rm -rf "$conf_dir" && mkdir -p "$conf_dir/servers"
render() {
  sed -e "s|@LISTEN@|$EDGE_LISTEN|g" \
      -e "s|@UPSTREAM@|$EDGE_UPSTREAM|g" \
      -e "s|@RATE_LIMIT@|$EDGE_RATE_LIMIT|g" \
      -e "s|@RATE_BURST@|$EDGE_RATE_BURST|g" \
      -e "s|@HTTPS_LISTEN@|$EDGE_HTTPS_LISTEN|g" \
      -e "s|@HTTPS_PORT@|$EDGE_HTTPS_PORT|g" \
      -e "s|@TLS_DIR@|$EDGE_TLS_DIR|g" \
      "$source_dir/$1" >"$2"
}
for file in nginx.conf routes.conf proxy.conf; do
  render "$file" "$conf_dir/$file"
done
for file in $servers; do
  render "$file" "$conf_dir/servers/$file"
done

exec nginx -p "$prefix" -e stderr -c "$conf_dir/nginx.conf"
