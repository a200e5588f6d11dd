# syntax=docker/dockerfile:1
# Builds the hubflow manager and the HTTP gateway into static binaries on one
# distroless, non-root image: the manager is the entrypoint, the gateway's
# Deployment runs /gateway.

FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace

# Dependencies first, so source edits do not invalidate the module download layer.
# The client library is its own module (pkg/), required through a replace.
COPY go.mod go.sum ./
COPY pkg/go.mod pkg/go.sum pkg/
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY pkg/ pkg/

RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o manager ./cmd/manager && \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o gateway ./cmd/gateway

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
COPY --from=builder /workspace/gateway /gateway
USER 65532:65532
ENTRYPOINT ["/manager"]
