# The vkube control-plane image that `vkube render` / `vkube create --in-cluster` reference:
#   docker build -t ghcr.io/vkube/vkube:0.1.0 .
# Two stages: build a wheel (needs the source tree), install it into a clean slim image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY vkube ./vkube
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 VKUBE_HOME=/data/vkube
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && groupadd --gid 65532 vkube && useradd --uid 65532 --gid 65532 --no-create-home vkube \
 && mkdir -p /data && chown 65532:65532 /data
USER 65532:65532
WORKDIR /data
EXPOSE 6443
ENTRYPOINT ["vkube"]
CMD ["serve", "--data-dir", "/data", "--port", "6443"]
