"""WSGI entry point, imported by each HTTP worker: ``python -m serving.gateway.http_server`` serves it."""

from serving.gateway import metrics
from serving.gateway.http_app import create_app

metrics.forget_dead_processes()
app = create_app()
