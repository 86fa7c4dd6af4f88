# syntax=docker/dockerfile:1
# The REST/JSON gateway image: core dependencies only (no TensorFlow, no extras).
# Build:  docker build -t tfserving-gateway:latest .
# Run:    docker run -p 8080:8080 -e TFGW_BACKEND=tfserving:8500 tfserving-gateway:latest --model digits
# Arguments after the image name are appended to `tfgw gateway` (e.g. --model NAME).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/tfgw
COPY pyproject.toml README.md ./
COPY gateway ./gateway
# Core install: `.` without extras keeps TensorFlow and the server/test tools out.
RUN /opt/tfgw/bin/pip install . \
    && /opt/tfgw/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('tensorflow') is not None)"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 tfgw \
    && useradd --system --uid 10001 --gid tfgw --no-create-home --shell /usr/sbin/nologin tfgw
COPY --from=build /opt/tfgw /opt/tfgw
ENV PATH=/opt/tfgw/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TFGW_BACKEND=tfserving:8500 \
    TFGW_PORT=8080
USER 10001:10001
EXPOSE 8080
# The port comes from the environment (TFGW_PORT, or AIP_HTTP_PORT on Vertex AI, which wins).
# Slim images have no curl: probe /healthz with the standard library.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('AIP_HTTP_PORT') or os.environ.get('TFGW_PORT', '8080'); urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
ENTRYPOINT ["/bin/sh", "-c", "exec tfgw gateway --backend \"$TFGW_BACKEND\" --host 0.0.0.0 \"$@\"", "tfgw"]
CMD []
