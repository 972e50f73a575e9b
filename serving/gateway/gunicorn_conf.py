"""gunicorn settings for the gateway; each can be overridden by its GUNICORN_* variable."""

import os

from prometheus_client import multiprocess

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# gthread: requests mostly wait on the model server, and the more of them are in
# flight at once, the larger the batches it can form.
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "15"))
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESSLOG")  # off unless set ("-" = stdout)
# No gunicornc control socket: nothing uses it, its default path ($HOME/.gunicorn) is
# read-only in the container, and every gunicorn on a host would share it.
control_socket_disable = True


def child_exit(server, worker):
    # Drop the exited worker's live gauges from the shared metrics directory.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
