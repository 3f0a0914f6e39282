# asm in a container: the same install path as `make install` (venv + pip from pyproject.toml).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends make amsynth chromium fluid-soundfont-gm \
        libfluidsynth3 && rm -rf /var/lib/apt/lists/*
# CPU-only torch wheels (the exact pin in pyproject.toml is satisfied by 2.13.0+cpu).
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /asm
COPY . .
RUN make install
ENV PATH="/asm/.venv/bin:$PATH"
ENTRYPOINT ["asm"]
CMD ["--help"]
