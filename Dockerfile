# One image for the four Loopline services: `docker run IMAGE serve planner` (or memory,
# tool-executor, recovery). Configured by the same LOOPLINE_* variables as the native path.
# Each container serves /metrics, /healthz and /readyz on port 9100; spans go out over OTLP
# when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_TRACES_EXPORTER) is set.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY libs libs
COPY services services
COPY src src
COPY tools tools
RUN UV_PYTHON_DOWNLOADS=never uv sync --frozen --no-dev --no-editable --extra otlp \
    && for p in tools/*/pyproject.toml; do [ -e "$p" ] || continue; \
         uv pip install --python .venv/bin/python "$(dirname "$p")"; done

FROM python:3.11-slim
RUN useradd --system --uid 10001 loopline
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 \
    LOOPLINE_HTTP_HOST=0.0.0.0 LOOPLINE_HTTP_PORT=9100
EXPOSE 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=2).status != 200)"]
USER loopline
ENTRYPOINT ["loopline"]
CMD ["--help"]
