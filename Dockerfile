# GLM-4.1V Studio — image for a Docker Space or a GPU workstation.
#   docker build -t glm4v-studio .
#   docker run --gpus all -p 7860:7860 -v hf-cache:/home/user/.cache/huggingface glm4v-studio \
#       studio ui --host 0.0.0.0 --model zai-org/GLM-4.1V-9B-Thinking
# Listening on 0.0.0.0 without a login, the app starts in public mode (Chat and Compare only,
# allow-listed models, no training or file access). For the full app require a login:
#   docker run … -e STUDIO_AUTH=user:long-password glm4v-studio
# (or pass --private to `studio ui` on a network you trust). The start-up line says which mode is on.
# No secrets are baked in: pass HF_TOKEN at run time (-e HF_TOKEN=…) if you push to the Hub.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/home/user/.cache/huggingface \
    STUDIO_CACHE=/home/user/.cache/glm4v-studio \
    STUDIO_RUNS=/home/user/runs \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_ANALYTICS_ENABLED=False

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv

# Hugging Face Spaces run containers as uid 1000.
RUN useradd --create-home --uid 1000 --shell /bin/bash user \
 && mkdir -p /home/user/.cache/huggingface /home/user/runs \
 && chown -R user:user /home/user /opt/venv

WORKDIR /home/user/app
COPY --chown=user:user pyproject.toml README.md ./
COPY --chown=user:user studio ./studio
COPY --chown=user:user sample_data ./sample_data
COPY --chown=user:user app.py ./
USER 1000:1000
# Versions are pinned in pyproject.toml; this installs the local package.
# hadolint ignore=DL3013
RUN pip install ".[quant]"

VOLUME ["/home/user/.cache/huggingface"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["curl", "-fsS", "http://127.0.0.1:7860/"]
CMD ["studio", "ui", "--host", "0.0.0.0", "--port", "7860"]
