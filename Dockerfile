# tarhold production image: python slim, non-root, config and upstream URL
# from the environment, health checked on /-/ping.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY storage ./storage
COPY uplinks ./uplinks
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /var/lib/tarhold --create-home tarhold \
    && mkdir -p /etc/tarhold && chown tarhold /var/lib/tarhold
COPY config.yaml.example /etc/tarhold/config.yaml.example
USER tarhold
WORKDIR /var/lib/tarhold
# TARHOLD_CONFIG names the config file (mount one at /etc/tarhold/config.yaml);
# without one tarhold runs on the embedded default in /var/lib/tarhold/storage.
# The upstream URL comes from TARHOLD_UPSTREAM_URL through the config
# (`url: TARHOLD_UPSTREAM_URL`); no registry address is baked into the image.
ENV TARHOLD_CONFIG=/etc/tarhold/config.yaml \
    PYTHONUNBUFFERED=1
EXPOSE 4873
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:4873/-/ping', timeout=2); sys.exit(0)" || exit 1
ENTRYPOINT ["sh", "-c", "if [ -f \"$TARHOLD_CONFIG\" ]; then exec tarhold serve -c \"$TARHOLD_CONFIG\" \"$@\"; else exec env TARHOLD_CONFIG= tarhold serve --listen 0.0.0.0:4873 --storage /var/lib/tarhold/storage \"$@\"; fi", "tarhold"]
