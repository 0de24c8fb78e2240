# One image, two commands: the API server (default) or the console.
#   docker build -t llm-router .
#   docker run -p 8000:8000 llm-router                       # OpenAI-compatible API
#   docker run -p 8000:8000 -e NVIDIA_API_KEY=... llm-router  # real NIM tiers
#   docker run -p 8501:8501 llm-router python -m router console --host 0.0.0.0   # the console
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/router.db

WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY router/ router/
COPY storage/ storage/
COPY training/ training/
COPY bench/ bench/
COPY config/ config/
COPY pages/ pages/
COPY models/ models/
COPY .streamlit/ .streamlit/
COPY app.py alembic.ini ./
# The runtime only: pinned by constraints.txt, no dev or training extras.
RUN pip install -c constraints.txt -e .

RUN useradd --create-home --uid 10001 router && mkdir /data && chown router /data
USER router
VOLUME /data
EXPOSE 8000 8501

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health?tiers=0').status != 200)"

CMD ["python", "-m", "router", "serve", "--host", "0.0.0.0", "--port", "8000"]
