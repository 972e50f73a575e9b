"""WSGI entry point, imported by each HTTP worker: ``python -m serving.gateway.api.http_server`` serves it."""

from serving.gateway.api.http_app import create_app
from serving.gateway.observability import metrics

metrics.forget_dead_processes()
app = create_app()
