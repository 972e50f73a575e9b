"""WSGI entry point: ``gunicorn -c serving/gateway/gunicorn_conf.py serving.gateway.wsgi:app``."""

from serving.gateway.http_app import create_app

app = create_app()
