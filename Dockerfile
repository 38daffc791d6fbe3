# syntax=docker/dockerfile:1
# tarhold production image: a wheel built in one stage, installed alone into
# python:3.11-slim in the next; runs as a fixed non-root uid; config from
# /etc/tarhold/config.yaml, $TARHOLD_CONFIG or the environment; health
# checked on /-/ping. No registry address is baked in: the upstream URL comes
# from the config (`url: TARHOLD_UPSTREAM_URL` reads the environment).
#
#   docker build -t tarhold .
#   docker run -p 4873:4873 -v tarhold-data:/var/lib/tarhold tarhold
#   docker run -v ./config.yaml:/etc/tarhold/config.yaml:ro tarhold --workers 2
#   docker run tarhold user add alice --admin     # other tarhold commands
#
# The entrypoint (deploy/docker/entrypoint.sh) says which config is used.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY storage ./storage
COPY uplinks ./uplinks
# Wheels of tarhold and of every dependency: the runtime stage installs from
# here only (no compiler, no index, no source tree in the final image).
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels tarhold
RUN groupadd --system --gid 10001 tarhold \
    && useradd --system --uid 10001 --gid tarhold \
        --home-dir /var/lib/tarhold --no-create-home --shell /usr/sbin/nologin tarhold \
    && mkdir -p /var/lib/tarhold /etc/tarhold \
    && chown tarhold:tarhold /var/lib/tarhold
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/tarhold-entrypoint
COPY --chmod=0644 config.yaml.example /etc/tarhold/config.yaml.example
# Embedded default storage (files + SQLite) when no S3 store is configured.
VOLUME ["/var/lib/tarhold"]
WORKDIR /var/lib/tarhold
USER 10001:10001
EXPOSE 4873
# The port comes from TARHOLD_LISTEN when it is set, else 4873: a config
# that listens on another port needs TARHOLD_LISTEN too.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('TARHOLD_LISTEN', '4873').rpartition(':')[2]; urllib.request.urlopen('http://127.0.0.1:%s/-/ping' % port, timeout=2)"]
ENTRYPOINT ["/usr/local/bin/tarhold-entrypoint"]
