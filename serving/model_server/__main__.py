"""Run the model server: ``python -m serving.model_server --model_config_file models.config``.

Flags carry TF Serving's names and meanings, so a deployment's command line
reads the same for both servers. Only ``--base_path_map`` is extra: it lets the
container config (``base_path: "/models/..."``) serve local folders.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from concurrent import futures
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402  (the real runtime before serving.tfs_apis)

from serving.model_server.access_log import AccessLog, RestAccessLog  # noqa: E402
from serving.model_server.config import (  # noqa: E402
    ConfigError,
    load_batching_parameters,
    load_model_config,
    load_monitoring_config,
)
from serving.model_server.data_plane import DataPlane  # noqa: E402
from serving.model_server.grpc_api import add_services  # noqa: E402
from serving.model_server.manager import ModelManager  # noqa: E402
from serving.model_server.metrics import observe_batch  # noqa: E402
from serving.model_server.rest_api import create_rest_app  # noqa: E402
from serving.model_server.rest_server import RestServer  # noqa: E402
from serving.termination import TerminationSignal  # noqa: E402

log = logging.getLogger("serving.model_server")


def tf_serving_bool(value: str) -> bool:
    """TF Serving's boolean flags: ``--flag``, ``--flag=true`` or ``--flag=false``."""
    lowered = value.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return lowered in ("true", "1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m serving.model_server", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(env("MODEL_SERVER_PORT", "8500")),
                        help="gRPC port [env MODEL_SERVER_PORT; default 8500]")
    parser.add_argument("--rest_api_port", type=int, default=int(env("MODEL_SERVER_REST_PORT", "8501")),
                        help="REST port, 0 disables [env MODEL_SERVER_REST_PORT; default 8501]")
    parser.add_argument("--rest_api_num_threads", type=int, default=4 * (os.cpu_count() or 1),
                        help="REST worker threads [default 4 per core, as in TF Serving]")
    parser.add_argument("--host", default=env("MODEL_SERVER_HOST", "127.0.0.1"),
                        help="listen address [env MODEL_SERVER_HOST; default 127.0.0.1]")
    parser.add_argument("--model_config_file", type=Path, required=True, help="TF Serving models.config")
    parser.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0,
                        help="if > 0, config changes are applied at the next file-system poll [default 0]")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1,
                        help="look for new versions this often [default 1]")
    parser.add_argument("--enable_batching", type=tf_serving_bool, nargs="?", const=True, default=False,
                        metavar="true|false", help="batch concurrent requests [default false]")
    parser.add_argument("--batching_parameters_file", type=Path, help="TF Serving batching parameters")
    parser.add_argument("--monitoring_config_file", type=Path, help="TF Serving monitoring config")
    parser.add_argument("--base_path_map", action="append", default=[], metavar="FROM=TO",
                        help="serve base paths starting with FROM from TO instead (repeatable)")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0,
                        help="threads one TensorFlow op may use; 0 = one per core [default 0]")
    parser.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0,
                        help="TensorFlow ops run at once; 0 = one per core [default 0]")
    parser.add_argument("--xla_cpu_compilation_enabled", type=tf_serving_bool, nargs="?", const=True, default=False,
                        metavar="true|false",
                        help="run XLA-compiled (jit_compile) functions on the CPU; without it such "
                        "models are refused [default false]")
    parser.add_argument("--grpc_max_threads", type=int, default=64, help="gRPC worker threads [default 64]")
    parser.add_argument("--access_log", type=tf_serving_bool, nargs="?", const=True,
                        default=env("MODEL_SERVER_ACCESS_LOG", "false"),
                        help="a log line per gRPC call, with the gateway's request ids, and per REST "
                             "request (not a TF Serving flag: set MODEL_SERVER_ACCESS_LOG=true to keep the "
                             "command line TF Serving's) [default false]")
    parser.add_argument("--shutdown_grace_seconds", type=float, default=10,
                        help="on SIGTERM, time given to requests in flight [default 10]")
    args = parser.parse_args(argv)
    if args.batching_parameters_file and not args.enable_batching:
        parser.error("--batching_parameters_file needs --enable_batching")
    if args.rest_api_num_threads < 1:
        parser.error("--rest_api_num_threads must be at least 1")
    return args


def base_path_mapper(mappings: list[str]):
    pairs = []
    for mapping in mappings:
        source, sep, target = mapping.partition("=")
        if not sep:
            raise ConfigError(f"--base_path_map {mapping!r}: expected FROM=TO")
        pairs.append((source.rstrip("/"), Path(target)))

    def mapped(base_path: str) -> Path:
        for source, target in pairs:
            if base_path == source or base_path.startswith(source + "/"):
                return target / base_path[len(source):].lstrip("/")
        return Path(base_path)

    return mapped


def main(argv: list[str] | None = None) -> int:
    """Exit status 2 on a bad config; after SIGTERM the process ends through ``os._exit(0)``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    # Before the first op runs; batching spreads work over cores through its batch threads.
    tf.config.threading.set_intra_op_parallelism_threads(args.tensorflow_intra_op_parallelism)
    tf.config.threading.set_inter_op_parallelism_threads(args.tensorflow_inter_op_parallelism)
    try:
        load_model_config(args.model_config_file)  # fail fast, with the file's name, on a bad config
        batching = load_batching_parameters(args.batching_parameters_file) if args.enable_batching else None
        monitoring = load_monitoring_config(args.monitoring_config_file) if args.monitoring_config_file else None
        manager = ModelManager(
            args.model_config_file,
            base_path_mapper(args.base_path_map),
            batching,
            on_batch=observe_batch,
            reload_config=args.model_config_file_poll_wait_seconds > 0,
            xla_enabled=args.xla_cpu_compilation_enabled,
        )
        manager.poll(newest_only=True)  # older versions load in the polling thread, while serving
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.grpc_max_threads),
                              interceptors=[AccessLog()] if args.access_log else [])
    plane = DataPlane(manager)
    add_services(grpc_server, plane)
    grpc_server.add_insecure_port(f"{args.host}:{args.port}")
    grpc_server.start()

    rest_server = None
    if args.rest_api_port:
        prometheus = monitoring.prometheus_config if monitoring else None
        metrics_path = (prometheus.path or "/monitoring/prometheus/metrics") if prometheus and prometheus.enable else None
        rest_app = create_rest_app(plane, metrics_path)
        rest_server = RestServer(RestAccessLog(rest_app) if args.access_log else rest_app,
                                 args.host, args.rest_api_port, args.rest_api_num_threads)
        rest_server.start()

    termination = TerminationSignal()
    threading.Thread(
        target=manager.run_polling, args=(args.file_system_poll_wait_seconds, termination.event), name="poll",
        daemon=True,
    ).start()
    log.info("serving %s: gRPC on %s:%d, REST on %s", ", ".join(manager.model_names()), args.host, args.port,
             f"{args.host}:{args.rest_api_port}" if rest_server else "off")
    termination.wait()

    log.info("shutting down: refusing new requests, finishing those in flight")
    # Both servers close their ports at once, then finish their requests side by side.
    rest_stopped = rest_server.stop(args.shutdown_grace_seconds) if rest_server else None
    grpc_server.stop(args.shutdown_grace_seconds).wait(args.shutdown_grace_seconds + 1)
    if rest_stopped:
        rest_stopped.wait(args.shutdown_grace_seconds + 1)
    closing = threading.Thread(target=manager.close, daemon=True)
    closing.start()
    closing.join(args.shutdown_grace_seconds)
    log.info("stopped")
    logging.shutdown()
    # Exit now even if a stuck client connection still holds a worker thread: the
    # shutdown time stays bounded by the grace period.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
