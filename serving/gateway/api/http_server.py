"""The gateway's HTTP server: granian serving the WSGI app, configured by ``GATEWAY_HTTP_*``.

    python -m serving.gateway.api.http_server [--app MODULE:NAME]

Workers are processes (``GATEWAY_HTTP_WORKERS``) with ``GATEWAY_HTTP_THREADS`` threads
each that run requests; a worker that dies is replaced; SIGTERM stops accepting,
lets requests in progress finish for up to ``GATEWAY_HTTP_GRACEFUL_SECONDS``, then
exits. With several workers, ``PROMETHEUS_MULTIPROC_DIR`` must name a folder for
the metrics they share. The server must sit behind the buffering edge: it does not
bound how long a client may take to send a request body (docs/deployment.md, "The edge").
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import sys

from granian import Granian
from granian.constants import Interfaces

from serving.gateway.api.exposure import exposure_warnings
from serving.gateway.observability.logs import logging_config
from serving.gateway.operator_files import read_files
from serving.gateway.settings import Settings, SettingsError

APP = "serving.gateway.api.wsgi:app"
# Seconds between a worker's death and its replacement (granian's default is 3.5).
RESPAWN_SECONDS = 1.0


def server(settings: Settings, app: str = APP) -> Granian:
    return Granian(
        app,
        address=settings.http_host,
        port=settings.http_port,
        interface=Interfaces.WSGI,
        workers=settings.http_workers,
        # Requests beyond the threads wait in granian's queue. (granian's `backpressure`
        # counts connections, idle keep-alive ones too: set to the threads, 48 of 64
        # keep-alive clients got no answer at all in benchmarks.http_servers.)
        blocking_threads=settings.http_threads,
        websockets=False,
        respawn_failed_workers=True,
        respawn_interval=RESPAWN_SECONDS,
        workers_kill_timeout=settings.http_graceful_seconds,
        # The app writes the access log itself (serving/gateway/observability/logs.py): it knows the key
        # id, the model and the version; granian's own lines share the format.
        log_access=False,
        log_dictconfig=logging_config(settings.log_format),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.gateway.api.http_server", description=__doc__.split("\n")[0])
    parser.add_argument("--app", default=APP,
                        help="the WSGI app to serve with these settings, e.g. a benchmark's [%(default)s]")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.app == APP:
            read_files(settings)  # here, not in every worker: a bad file stops the start once
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.config.dictConfig(logging_config(settings.log_format))
    for warning in exposure_warnings(settings, grpc=False):
        logging.getLogger(__name__).warning("%s", warning)
    server(settings, args.app).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
