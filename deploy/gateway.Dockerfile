# Gateway image: Flask under granian + gRPC, without the TensorFlow runtime.
#
# tensorflow-serving-api's generated modules import TensorFlow's generated protobuf
# modules (tensorflow/core/...). The first stage installs TensorFlow only to copy
# exactly those files out; the final image never contains the runtime.
# BASE_IMAGE: any image with Python 3.11 and its venv module (tests build a Debian one).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS tf-protos
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONPATH=/app PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/venv \
 && pip install -c requirements.lock tensorflow tensorflow-serving-api
COPY serving/__init__.py serving/tfs_apis.py serving/
COPY deploy/copy_tf_protos.py deploy/
RUN python deploy/copy_tf_protos.py /tf-protos

FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/venv \
 && pip install -c requirements.lock flask flask-cors granian prometheus-client numpy protobuf pydantic-settings pyyaml \
        swagger-ui-bundle grpcio grpcio-health-checking grpcio-reflection \
 && pip install -c requirements.lock --no-deps tensorflow-serving-api
COPY --from=tf-protos /tf-protos/tensorflow /opt/venv/lib/python3.11/site-packages/tensorflow
COPY text_contract/ text_contract/
COPY serving/__init__.py serving/tfs_apis.py serving/termination.py serving/grpc_retries.py serving/
COPY serving/gateway/ serving/gateway/
COPY serving/client/ serving/client/
COPY serving/predictions_log/ serving/predictions_log/
COPY proto/sentiment/ sentiment/
COPY deploy/gateway-entrypoint.sh deploy/gateway-entrypoint.sh

USER 10001:10001
EXPOSE 8000 8600
ENTRYPOINT ["deploy/gateway-entrypoint.sh"]
