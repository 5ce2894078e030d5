# keyhunt: the Slack bot (`keyhunt serve`) and every other command, in a small non-root image.
#
#   docker build -t keyhunt .
#   docker run --rm -p 3000:3000 -v keyhunt-data:/data \
#     -e SLACK_BOT_TOKEN -e SLACK_SIGNING_SECRET -e KEYHUNT_CHANNEL keyhunt
#   docker run --rm keyhunt hunt --last 7d --format jsonl
#
# State (the SQLite store) lives under the /data volume. Configuration comes from the
# environment, or from a YAML file: mount it at /app/config/keyhunt.yaml or set KEYHUNT_CONFIG.
# AWS credentials come from the standard chain (task/instance role, AWS_* variables).
#
# The base is pinned by tag and by the digest of its multi-architecture index; bump both
# together (`docker buildx imagetools inspect python:3.11.14-slim-bookworm`).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# ---------------------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build

# Optional dependency groups of pyproject.toml baked into the image ("" for none).
# postgres lets several replicas share one store (KEYHUNT_DATABASE_URL=postgresql+psycopg://...).
ARG EXTRAS=postgres

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/keyhunt

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when the
# dependency list changes, not on every source edit.
COPY pyproject.toml ./
RUN python -c "import sys, tomllib; \
project = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [e for e in sys.argv[1].split(',') if e]; \
deps = project['dependencies'] + [d for e in extras for d in project['optional-dependencies'][e]]; \
open('/tmp/requirements.txt', 'w').write(chr(10).join(deps) + chr(10))" "${EXTRAS}" \
 && /opt/keyhunt/bin/pip install --no-cache-dir -r /tmp/requirements.txt

# Then the source, installed without touching the dependencies again.
COPY README.md ./
COPY checks/ checks/
COPY bot/ bot/
RUN /opt/keyhunt/bin/pip install --no-cache-dir --no-deps .

# -------------------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="keyhunt" \
      org.opencontainers.image.description="Slack ChatOps bot that hunts new long-term IAM access keys in CloudTrail" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed uid/gid above 10000, so it never maps onto a host account, and no login shell.
RUN groupadd --system --gid 10001 keyhunt \
 && useradd --system --uid 10001 --gid keyhunt --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin keyhunt \
 && mkdir -p /data /app/config \
 && chown keyhunt:keyhunt /data

COPY --from=build /opt/keyhunt /opt/keyhunt

ENV PATH=/opt/keyhunt/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000 \
    KEYHUNT_DATABASE_URL=sqlite:////data/keyhunt.db

WORKDIR /app
USER 10001:10001

# Smoke test at build time, as the runtime user: the CLI starts and every module of the
# long-running bot imports (a missing dependency fails the build, not the first deploy).
RUN keyhunt --help > /dev/null \
 && python -c "import bot.runtime, bot.preflight, bot.digest"

VOLUME ["/data"]
EXPOSE 3000

# slim has no curl: ask /healthz with the standard library. 503 (scheduler stopped, or the
# last successful poll too old) raises, so the container turns unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz', timeout=4)"]

ENTRYPOINT ["keyhunt"]
CMD ["serve"]
