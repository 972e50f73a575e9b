# Training job image: TensorFlow + the training package and the text contract it exports.
# BASE_IMAGE: any image with Python 3.11 and its venv module (tests build a Debian one).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app MPLCONFIGDIR=/tmp/matplotlib PATH=/opt/venv/bin:$PATH
WORKDIR /app

COPY requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/venv \
 && pip install -c requirements.lock tensorflow tensorflow-serving-api matplotlib numpy

COPY text_contract/ text_contract/
COPY training/ training/
COPY deploy/trainer-entrypoint.sh deploy/trainer-entrypoint.sh

# An empty named volume mounted here takes this folder's owner, so the non-root
# job can write its exports into it.
RUN mkdir /models && chown 10001:10001 /models
USER 10001:10001
ENTRYPOINT ["deploy/trainer-entrypoint.sh"]
