# callflow: FastAGI server (AGI on 4573, metrics and health on 9108). Configured by CALLFLOW_* variables.
#   docker build -t callflow .
#   docker run --rm -e CALLFLOW_ALLOWED_NETWORKS=192.0.2.10/32 -e CALLFLOW_REDIS_URL=... -e CALLFLOW_AMQP_URL=... \
#       -p 4573:4573 -p 127.0.0.1:9108:9108 -v callflow-data:/var/lib/callflow callflow
# BASE_IMAGE: any Debian-like image with python3 (3.9 or newer) and its venv module, e.g. one made from
# Debian's packages where no image registry is reachable (scripts/image-smoke does that).
ARG BASE_IMAGE=python:3.13-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/callflow/venv/bin:$PATH

RUN groupadd --system --gid 10001 callflow \
 && useradd --system --uid 10001 --gid callflow --home-dir /var/lib/callflow --no-create-home \
        --shell /usr/sbin/nologin callflow \
 && mkdir -p /var/lib/callflow /var/log/callflow \
 && chown callflow:callflow /var/lib/callflow /var/log/callflow

# A virtual environment, not the base's own site-packages: the same steps then work on a base whose
# Python belongs to the system (Debian forbids pip there). The dependencies get their own layer,
# rebuilt only when pyproject.toml changes, installed with a placeholder package (and README, which
# pyproject.toml names); the code then replaces it.
WORKDIR /opt/callflow
COPY pyproject.toml ./
RUN python3 -m venv /opt/callflow/venv \
 && mkdir -p src/callflow && touch src/callflow/__init__.py README.md \
 && pip install '.[fast]' && pip uninstall -y callflow && rm -rf src build README.md
COPY README.md ./
COPY src ./src
RUN pip install --no-deps . && rm -rf src build && callflow --help >/dev/null

# Listen on every interface of the container; CALLFLOW_ALLOWED_NETWORKS (default loopback only) still
# decides who may connect: set it to your Asterisk servers' addresses. The metrics and health port
# takes private networks (a published port reaches it from the bridge's gateway; ADR 0082): publish
# it on the host's loopback, or narrow CALLFLOW_HTTP_ALLOWED_NETWORKS to your Prometheus.
ENV CALLFLOW_AGI_HOST=0.0.0.0 \
    CALLFLOW_HTTP_HOST=0.0.0.0 \
    CALLFLOW_HTTP_ALLOWED_NETWORKS=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7 \
    CALLFLOW_DATA_DIR=/var/lib/callflow \
    CALLFLOW_LOG_DIR=/var/log/callflow \
    CALLFLOW_LOG_FORMAT=json

# The outbox (events not yet confirmed by RabbitMQ) lives in the data volume: keep it across restarts.
VOLUME ["/var/lib/callflow", "/var/log/callflow"]
EXPOSE 4573 9108
USER callflow:callflow

# /healthz says the process answers; /readyz (Redis and RabbitMQ reachable) is for load balancers.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CALLFLOW_HTTP_PORT', '9108'), timeout=2)"]

# SIGTERM drains: stops accepting, lets sessions in flight finish (CALLFLOW_DRAIN_TIMEOUT_S), pushes
# the outbox, exits 0. Give it longer than the drain timeout before SIGKILL (docker stop -t 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["callflow"]
CMD ["serve"]
