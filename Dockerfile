# LabelCast: one image for both processes of the Label Studio ML backend.
#   docker run IMAGE          -> the web process (gunicorn serving backend.app:create_app())
#   docker run IMAGE worker   -> `labelcast worker`, the GPU process that embeds and trains
#   docker run IMAGE CMD ...  -> runs CMD (e.g. `labelcast connect ...`, `labelcast doctor`)
# See docker/entrypoint.sh for the dispatch and docker-compose.yml for the full stack.

# PyTorch 2.9.1 built for CUDA 12.8 and cuDNN 9 (runtime flavour: no compiler, no CUDA headers).
# Its Python is the one LabelCast installs into; torch and torchvision stay the base image's own.
FROM pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_CONSTRAINT=/etc/labelcast/constraints.txt

# The unprivileged user the processes run as (no login shell needed, no log entry for the uid).
RUN groupadd --system --gid 10001 labelcast \
 && useradd --system --no-log-init --uid 10001 --gid labelcast \
        --home-dir /home/labelcast --create-home --shell /usr/sbin/nologin labelcast

WORKDIR /app

# Layer 1, dependencies: rebuilt only when pyproject.toml changes. A stub package stands in for
# the code so that pip reads the dependency list from pyproject.toml itself, then it is removed.
# The constraints file pins torch and torchvision to the base image's CUDA builds, so no
# dependency can pull a different torch wheel in (now or in any later pip install).
COPY pyproject.toml ./
RUN mkdir -p /etc/labelcast backend \
 && python -c "import torch, torchvision as tv; print(f'torch=={torch.__version__}\ntorchvision=={tv.__version__}')" \
        > /etc/labelcast/constraints.txt \
 && touch backend/__init__.py README.md \
 && pip install --no-cache-dir . \
 && pip uninstall --yes labelcast \
 && rm -rf backend README.md build ./*.egg-info

# Layer 2, the code: a plain `pip install .`; every dependency is already satisfied.
COPY pyproject.toml README.md* ./
COPY backend ./backend
COPY docker ./docker
RUN pip install --no-cache-dir . \
 && rm -rf build ./*.egg-info \
 && chmod 0755 docker/entrypoint.sh docker/healthcheck.py

# Hugging Face cache (encoder weights; mount a pre-filled one for air-gapped sites; torchvision's
# weights go in it too) and the backend's own state. Created here so that fresh named volumes
# inherit the owner.
ENV HF_HOME=/data/huggingface \
    TORCH_HOME=/data/huggingface/torch \
    MODEL_DIR=/data/models \
    PORT=9090
RUN mkdir -p "$HF_HOME" "$TORCH_HOME" "$MODEL_DIR" \
 && chown -R labelcast:labelcast /data
VOLUME ["/data/huggingface", "/data/models"]

USER 10001:10001
EXPOSE 9090

# Web: GET /health must answer {"status": "UP"}. Worker: Redis (its queue) must answer PING.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py"]

ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
