"""The reference ML stack in containers (docker-compose.yml): its configuration and lifecycle.

:mod:`mlchaos.containers.configs` renders the files under ``deploy/docker/`` that the stack's
containers mount (the same Prometheus jobs, labels and SANDBOX alert rules as the local
sandbox); :mod:`mlchaos.containers.stack` brings the compose stack up and down and says where
it answers on 127.0.0.1.
"""
