# Training job image: TensorFlow + the training package only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /app

COPY requirements.lock ./
RUN pip install -c requirements.lock tensorflow matplotlib numpy

COPY training/ training/
COPY deploy/trainer-entrypoint.sh deploy/trainer-entrypoint.sh

USER 10001:10001
ENTRYPOINT ["deploy/trainer-entrypoint.sh"]
