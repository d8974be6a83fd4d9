# datafactory services (simulator, gateway, ingest, analytics): one image, the command picks the service.
#   docker build -t datafactory .
#   docker run --rm datafactory --help
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY datafactory ./datafactory
COPY gateway ./gateway
COPY ingest ./ingest
COPY analytics ./analytics
COPY simulator ./simulator
COPY grafana ./grafana
COPY bureau ./bureau
COPY ops ./ops
COPY app ./app
COPY alerting ./alerting
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# libpq's client tools are not needed: psycopg[binary] ships its own libpq.
RUN useradd --system --create-home --home-dir /var/lib/datafactory datafactory
COPY --from=build /install /usr/local
WORKDIR /app
COPY edge_configs ./edge_configs
ENV DATAFACTORY_STATE_DIR=/var/lib/datafactory \
    PYTHONUNBUFFERED=1
USER datafactory
VOLUME ["/var/lib/datafactory"]
ENTRYPOINT ["datafactory"]
CMD ["--help"]
