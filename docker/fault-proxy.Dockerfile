# mlchaos' TCP fault proxy (Toxiproxy-compatible HTTP API on :8474); standard library only.
# The API listens beyond loopback, so it needs a token: MLCHAOS_PROXY_TOKEN (or a file named by
# MLCHAOS_PROXY_TOKEN_FILE); without one the process refuses to start and says why.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN command -v python3 >/dev/null \
 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 && rm -rf /var/lib/apt/lists/*)
ENV PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY mlchaos/__init__.py /app/mlchaos/__init__.py
COPY mlchaos/proxy/ /app/mlchaos/proxy/
EXPOSE 8474
CMD ["python3", "-m", "mlchaos.proxy", "--api", "0.0.0.0:8474", "--config", "/config/proxies.json"]
