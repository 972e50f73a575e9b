#!/bin/sh
# Starts the edge (nginx) from the files beside this script: docker-compose.yml, the
# Kubernetes Deployment and `make run` (deploy/local/run.sh) all run it. The files are
# rendered into nginx's writable prefix with the settings below, so the mounted copies
# stay read-only; @NAME@ in them is the variable EDGE_NAME.
#
#   EDGE_LISTEN        plain HTTP address                                  8080
#   EDGE_UPSTREAM      the gateway's HTTP server                           gateway:8000
#   EDGE_RATE_LIMIT    requests a second per client (its API key when it   100
#                      has the gateway's format, else its address), and
#                      the burst above it                                  EDGE_RATE_BURST=200
#   EDGE_ADDRESS_RATE_LIMIT  requests a second per address, whatever the   2 x EDGE_RATE_LIMIT
#                      keys, and the burst above it                        EDGE_ADDRESS_RATE_BURST=
#                                                                          2 x EDGE_RATE_BURST
#   EDGE_MAX_CONNECTIONS_PER_ADDRESS  requests in progress per address     64
#   EDGE_REAL_IP_FROM  proxies (addresses, CIDRs; spaces or commas) whose  unset: the peer is
#                      X-Forwarded-For names the client's address          the client
#   EDGE_WORKERS       nginx worker processes                              2
#   EDGE_TLS_DIR       a folder with tls.crt (chain) and tls.key: HTTPS    unset: no HTTPS
#   EDGE_HTTPS_LISTEN  HTTPS address                                       8443
#   EDGE_HTTP          with HTTPS, what the plain port does: "serve" the   serve
#                      API as well, or "redirect" GET and HEAD to HTTPS
#                      (probes stay; other methods get 403)
#   EDGE_PUBLIC_HOST   the host name redirects name                        required by redirect
#   EDGE_HTTPS_PORT    the public HTTPS port redirects name                443
#   EDGE_PREFIX        nginx's prefix: pid, temporary files, rendered conf /tmp/
set -eu

source_dir=$(cd "$(dirname "$0")" && pwd)
prefix=${EDGE_PREFIX:-/tmp/}
conf_dir="${prefix%/}/edge-conf"

fail() {
  echo "edge: $*" >&2
  exit 2
}

whole_number() {
  case $2 in
    '' | *[!0-9]*) fail "$1=$2: must be a whole number" ;;
  esac
}
positive_number() {
  whole_number "$1" "$2"
  [ "$2" -gt 0 ] || fail "$1=$2: must be at least 1"
}

EDGE_LISTEN=${EDGE_LISTEN:-8080}
EDGE_UPSTREAM=${EDGE_UPSTREAM:-gateway:8000}
EDGE_RATE_LIMIT=${EDGE_RATE_LIMIT:-100}
EDGE_RATE_BURST=${EDGE_RATE_BURST:-200}
positive_number EDGE_RATE_LIMIT "$EDGE_RATE_LIMIT"
whole_number EDGE_RATE_BURST "$EDGE_RATE_BURST"
EDGE_ADDRESS_RATE_LIMIT=${EDGE_ADDRESS_RATE_LIMIT:-$((2 * EDGE_RATE_LIMIT))}
EDGE_ADDRESS_RATE_BURST=${EDGE_ADDRESS_RATE_BURST:-$((2 * EDGE_RATE_BURST))}
EDGE_MAX_CONNECTIONS_PER_ADDRESS=${EDGE_MAX_CONNECTIONS_PER_ADDRESS:-64}
EDGE_REAL_IP_FROM=${EDGE_REAL_IP_FROM:-}
EDGE_WORKERS=${EDGE_WORKERS:-2}
EDGE_HTTPS_LISTEN=${EDGE_HTTPS_LISTEN:-8443}
EDGE_HTTP=${EDGE_HTTP:-serve}
EDGE_PUBLIC_HOST=${EDGE_PUBLIC_HOST:-}
EDGE_HTTPS_PORT=${EDGE_HTTPS_PORT:-443}
EDGE_TLS_DIR=${EDGE_TLS_DIR:-}

positive_number EDGE_ADDRESS_RATE_LIMIT "$EDGE_ADDRESS_RATE_LIMIT"
whole_number EDGE_ADDRESS_RATE_BURST "$EDGE_ADDRESS_RATE_BURST"
[ "$EDGE_ADDRESS_RATE_LIMIT" -ge "$EDGE_RATE_LIMIT" ] ||
  fail "EDGE_ADDRESS_RATE_LIMIT=$EDGE_ADDRESS_RATE_LIMIT: must be at least EDGE_RATE_LIMIT ($EDGE_RATE_LIMIT)"
positive_number EDGE_MAX_CONNECTIONS_PER_ADDRESS "$EDGE_MAX_CONNECTIONS_PER_ADDRESS"
positive_number EDGE_WORKERS "$EDGE_WORKERS"
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
if [ "$EDGE_HTTP" = redirect ]; then
  # Redirects name this host, never the client's Host header.
  case $EDGE_PUBLIC_HOST in
    '') fail "EDGE_HTTP=redirect needs EDGE_PUBLIC_HOST: the host name clients are sent to" ;;
    *[!]A-Za-z0-9.:[-]*) fail "EDGE_PUBLIC_HOST=$EDGE_PUBLIC_HOST: must be a host name or an address" ;;
  esac
fi

rm -rf "$conf_dir" && mkdir -p "$conf_dir/servers"
if [ "$(id -u)" = 0 ]; then
  echo "user root;" >"$conf_dir/workers-user.conf"
else
  : >"$conf_dir/workers-user.conf"
fi
: >"$conf_dir/real-ip.conf"
for proxy in $(echo "$EDGE_REAL_IP_FROM" | tr ',' ' '); do
  case $proxy in
    *[!0-9A-Fa-f.:/]*) fail "EDGE_REAL_IP_FROM: $proxy is not an address or a CIDR" ;;
  esac
  echo "set_real_ip_from $proxy;" >>"$conf_dir/real-ip.conf"
done
if [ -s "$conf_dir/real-ip.conf" ]; then
  printf 'real_ip_header X-Forwarded-For;\nreal_ip_recursive on;\n' >>"$conf_dir/real-ip.conf"
fi

render() {
  sed -e "s|@LISTEN@|$EDGE_LISTEN|g" \
      -e "s|@UPSTREAM@|$EDGE_UPSTREAM|g" \
      -e "s|@RATE_LIMIT@|$EDGE_RATE_LIMIT|g" \
      -e "s|@RATE_BURST@|$EDGE_RATE_BURST|g" \
      -e "s|@ADDRESS_RATE_LIMIT@|$EDGE_ADDRESS_RATE_LIMIT|g" \
      -e "s|@ADDRESS_RATE_BURST@|$EDGE_ADDRESS_RATE_BURST|g" \
      -e "s|@MAX_CONNECTIONS_PER_ADDRESS@|$EDGE_MAX_CONNECTIONS_PER_ADDRESS|g" \
      -e "s|@WORKERS@|$EDGE_WORKERS|g" \
      -e "s|@HTTPS_LISTEN@|$EDGE_HTTPS_LISTEN|g" \
      -e "s|@PUBLIC_HOST@|$EDGE_PUBLIC_HOST|g" \
      -e "s|@HTTPS_PORT@|$EDGE_HTTPS_PORT|g" \
      -e "s|@TLS_DIR@|$EDGE_TLS_DIR|g" \
      "$source_dir/$1" >"$2"
}
for file in nginx.conf headers.conf routes.conf probes.conf errors.conf proxy.conf; do
  render "$file" "$conf_dir/$file"
done
for file in $servers; do
  render "$file" "$conf_dir/servers/$file"
done

exec nginx -p "$prefix" -e stderr -c "$conf_dir/nginx.conf"
