# The reference model server (mlchaos.sandbox.model_server: iris, Open Inference Protocol, /metrics).
# scripts/docker-images.sh builds it FROM the offline base image, with the Python wheels downloaded
# on the host into docker/wheels/ (PIP_NO_INDEX=1: no index is contacted during the build).
# Where a registry and PyPI are reachable, `docker compose build` works as usual: BASE defaults to
# debian:bookworm-slim (python3 is installed when the base lacks it), docker/wheels/ is empty and
# pip uses the index.
ARG BASE=debian:bookworm-slim
FROM ${BASE} AS build
ARG PIP_NO_INDEX=
RUN command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null \
 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-venv ca-certificates && rm -rf /var/lib/apt/lists/*)
COPY docker/wheels/ /tmp/wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --quiet \
      ${PIP_NO_INDEX:+--no-index} --find-links /tmp/wheels \
      "scikit-learn>=1.3,<2" "prometheus-client>=0.20" "cryptography>=42"

FROM ${BASE}
RUN command -v python3 >/dev/null \
 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 && rm -rf /var/lib/apt/lists/*)
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    REPLICA=model-0 PORT=8000 MODEL_SERVER_ARGS=""
# only what the server imports: a change elsewhere in mlchaos does not rebuild this image
COPY mlchaos/__init__.py /app/mlchaos/__init__.py
COPY mlchaos/sandbox/ /app/mlchaos/sandbox/
EXPOSE 8000
# TLS (optional): mount certificates and set MODEL_SERVER_ARGS="--tls-port 8443 --tls-cert ... --tls-key ..."
CMD exec python -m mlchaos.sandbox.model_server --host 0.0.0.0 --port "$PORT" --replica "$REPLICA" $MODEL_SERVER_ARGS
