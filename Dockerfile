# syntax=docker/dockerfile:1
# eventrt image: a static binary on distroless, non-root, with the classic handler in
# /opt/eventrt so that it runs out of the box. See deploy/README.md for build and run.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse --short HEAD) -t eventrt:dev .
#
# The Python variant is Dockerfile.python; its build stage is the same.

ARG GO_VERSION=1.26.8

# The builder runs on the build machine's platform and cross-compiles (CGO is off), so a
# multi-platform build (docker buildx --platform linux/amd64,linux/arm64) needs no emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev
ARG REVISION=unknown
# Keep these flags in step with `make build` and deploy/dockerfile_test.go, which builds the
# binary the same way and checks it is static and stamped.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/eventrt/eventrt/internal/buildinfo.Version=${VERSION} -X github.com/eventrt/eventrt/internal/buildinfo.Revision=${REVISION}" \
      -o /out/eventrt ./cmd/eventrt

# static-debian12 has CA certificates, tzdata and /etc/passwd, nothing else: no shell, no
# package manager. The nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="eventrt" \
      org.opencontainers.image.description="Runs small expr handlers when Redis data changes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/eventrt /usr/local/bin/eventrt
COPY examples/classic/handler_module.expr /opt/eventrt/handler_module.expr
ENV HANDLER_PATH=/opt/eventrt \
    HANDLER_FUNCTION=handler_module.handler \
    HTTP_ADDR=:8080
USER 65532:65532
EXPOSE 8080
# Exec form: the image has no shell. `eventrt healthcheck` GETs /healthz on HTTP_ADDR's port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/eventrt", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/eventrt"]
