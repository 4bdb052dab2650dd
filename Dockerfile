# Dikkat bot image: CPU torch by default; see the README for a CUDA build.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# requirements.lock for the single process; requirements-scale.lock for the multi-machine roles
ARG DIKKAT_LOCK=requirements.lock
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the chosen index: a plain requirement would pull the multi-GB CUDA build.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
# Then exactly the tested versions, hash-checked, with nothing resolved here.
COPY requirements.lock requirements-scale.lock ./
RUN pip install --no-deps --require-hashes -r "${DIKKAT_LOCK}"
COPY pyproject.toml README.md ./
COPY dikkat ./dikkat
# hadolint ignore=DL3013
RUN pip install --no-deps --no-build-isolation . && pip check && dikkat --help > /dev/null

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dikkat" \
      org.opencontainers.image.description="Telegram and Discord bot: Turkish sentiment, a sorting nano-GPT, attention pictures"
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin dikkat \
    && mkdir -p /app/var \
    && chown dikkat:dikkat /app/var
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    OMP_WAIT_POLICY=PASSIVE \
    DIKKAT_DB_PATH=/app/var/dikkat.db \
    DIKKAT_MODEL_DIR=/app/var/models \
    DIKKAT_HTTP_HOST=0.0.0.0 \
    DIKKAT_HTTP_PORT=8080
WORKDIR /app
USER 10001:10001
VOLUME ["/app/var"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["dikkat", "healthcheck"]
ENTRYPOINT ["dikkat"]
CMD ["run"]
