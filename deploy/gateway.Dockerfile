# Gateway image: Flask/gunicorn + gRPC, without the TensorFlow runtime.
#
# tensorflow-serving-api's generated modules import TensorFlow's generated protobuf
# modules (tensorflow/core/...). The first stage installs TensorFlow only to copy
# exactly those files out; the final image never contains the runtime.
FROM python:3.11-slim AS tf-protos
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONPATH=/app
WORKDIR /app
COPY requirements.lock ./
RUN pip install -c requirements.lock tensorflow tensorflow-serving-api
COPY serving/__init__.py serving/tfs_apis.py serving/
RUN python - <<'PY'
import pathlib, shutil, sys
import serving.tfs_apis  # noqa: F401  (loads every generated module the gateway needs)
site = pathlib.Path(sys.modules["tensorflow.core"].__path__[0]).parents[1]
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if name.startswith("tensorflow.") and path:
        target = pathlib.Path("/tf-protos") / pathlib.Path(path).relative_to(site)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
PY

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app
WORKDIR /app
COPY requirements.lock ./
RUN pip install -c requirements.lock flask gunicorn prometheus-client numpy protobuf \
        grpcio grpcio-health-checking grpcio-reflection \
 && pip install -c requirements.lock --no-deps tensorflow-serving-api
COPY --from=tf-protos /tf-protos/tensorflow /usr/local/lib/python3.11/site-packages/tensorflow
COPY training/__init__.py training/preprocessing.py training/signature.py training/
COPY serving/__init__.py serving/tfs_apis.py serving/
COPY serving/gateway/ serving/gateway/
COPY serving/client/ serving/client/
COPY proto/sentiment/ sentiment/
COPY deploy/gateway-entrypoint.sh deploy/gateway-entrypoint.sh

USER 10001:10001
EXPOSE 8000 8600
ENTRYPOINT ["deploy/gateway-entrypoint.sh"]
