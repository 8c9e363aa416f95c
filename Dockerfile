# One image for the four Loopline services: `docker run IMAGE serve planner` (or memory,
# tool-executor, recovery). Configured by the same LOOPLINE_* variables as the native path.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY libs libs
COPY services services
COPY src src
RUN UV_PYTHON_DOWNLOADS=never uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
RUN useradd --system --uid 10001 loopline
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1
USER loopline
ENTRYPOINT ["loopline"]
CMD ["--help"]
