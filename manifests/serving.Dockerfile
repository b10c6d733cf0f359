# The KServe predictor image: the project installed from requirements.lock, run as a non-root user.
#
#   docker build -f manifests/serving.Dockerfile -t <registry>/xmcgan-serving:0.1.0 .
#   docker run --rm -p 8080:8080 -p 8081:8081 -v $PWD/model_dir:/models/xmcgan:ro <registry>/xmcgan-serving:0.1.0 \
#       --model-uri /models/xmcgan
#
# The lock pins every package, so the image installs without resolving; it carries the torch
# build of the lock (with CUDA libraries), so the same image serves on CPU and GPU nodes.
FROM python:3.11.7-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    HF_HUB_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    TOKENIZERS_PARALLELISM=false

WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY model/ model/
COPY components/ components/
RUN pip install --no-deps --no-build-isolation . && pip check

# A numeric UID, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin serve
USER 10001:10001

EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "components.serve"]
CMD ["--model-uri", "models:/xmcgan@champion", "--http-port", "8080", "--grpc-port", "8081"]
