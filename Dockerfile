# realtime-service container image: a static binary on distroless, running as a non-root user.
# Untested on the project's machines (they have no Docker engine); see docs/deployment.md, "The image".
#
#   docker build -t realtime-service:dev --build-arg VERSION=$(git describe --always) --build-arg REVISION=$(git rev-parse HEAD) .
#
# Pin the base images by digest too (image@sha256:...) in your registry mirror; the tags below
# are the versions this file was written for.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOOS=linux GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
COPY web ./web
RUN go build -ldflags="-s -w -buildid=" -o /out/realtime-service ./cmd/realtime-service

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="realtime-service" \
      org.opencontainers.image.description="Kafka events to real-time notifications over WebSocket, SSE and Socket.IO" \
      org.opencontainers.image.source="https://github.com/realtime-service/realtime-service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/realtime-service /realtime-service
# distroless "nonroot": uid/gid 65532, no shell, no package manager.
USER 65532:65532
ENV HTTP_ADDR=:3000
EXPOSE 3000
# No shell or curl in the image: the binary probes itself (GET /health/live on HTTP_ADDR).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/realtime-service", "healthcheck"]
ENTRYPOINT ["/realtime-service"]
CMD ["serve"]
