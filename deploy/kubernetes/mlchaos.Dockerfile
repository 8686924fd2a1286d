# The mlchaos runner image of the game-day CronJob (mlchaos/mlchaos). From the repository root:
#   docker build -f deploy/kubernetes/mlchaos.Dockerfile -t mlchaos/mlchaos:latest .
# (Not built by scripts/docker-images.sh: the offline build there has no use for it.)
ARG BASE=python:3.11-slim
FROM ${BASE}
COPY pyproject.toml README.md /src/
COPY mlchaos/ /src/mlchaos/
COPY drivers/ /src/drivers/
RUN pip install --no-cache-dir /src && useradd --uid 10001 --create-home mlchaos
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001
WORKDIR /home/mlchaos
ENTRYPOINT ["mlchaos"]
