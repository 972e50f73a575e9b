# The project's TF-Serving-compatible model server (python -m serving.model_server)
# as a drop-in for the tensorflow/serving image: same flags, ports, config files and
# model folders, and bash for the same healthcheck. Used where that image cannot be had.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app PATH=/opt/venv/bin:$PATH \
    MODEL_SERVER_HOST=0.0.0.0
WORKDIR /app

COPY requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/venv \
 && pip install -c requirements.lock tensorflow tensorflow-serving-api grpcio flask waitress prometheus-client numpy protobuf

COPY text_contract/ text_contract/
COPY serving/__init__.py serving/tfs_apis.py serving/termination.py serving/
COPY serving/model_server/ serving/model_server/
COPY proto/sentiment/ sentiment/

USER 10001:10001
EXPOSE 8500 8501
ENTRYPOINT ["python", "-m", "serving.model_server"]
