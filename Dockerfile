# syntax=docker/dockerfile:1
#
# One image per cosell binary, built from the Go workspace at the repository
# root:
#
#   docker build --build-arg SERVICE=ingress -t cosell/ingress .
#
# SERVICE is a service (services/<name>/cmd/<name>) or an emulator
# (emulators/cmd/<name>). The target "migrate" bundles every service binary
# and runs each one's `migrate` subcommand in turn (the compose one-shot).
#
# Images are static (CGO_ENABLED=0), run as the distroless "nonroot" user
# (65532) and carry /usr/local/bin/probe, a tiny HTTP client used by the
# compose health checks (distroless has no shell, curl or wget).

ARG GO_VERSION=1.26
ARG DISTROLESS=gcr.io/distroless/static-debian12

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build-base
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath
ARG TARGETOS TARGETARCH
ENV GOOS=$TARGETOS GOARCH=$TARGETARCH
# Module downloads and the build cache live in cache mounts, and the
# sources are bind-mounted, so a rebuild after a source change recompiles
# only what changed.
RUN --mount=type=bind,target=. \
    --mount=type=cache,target=/go/pkg/mod \
    go mod download
RUN --mount=type=bind,target=. \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags='-s -w' -o /out/probe ./deploy/cmd/probe
# Directories the containers own: named volumes mounted on them start with
# this ownership, so the non-root processes can write there.
RUN mkdir -p /out/state/pc-ca /out/state/sf-jwt && chown -R 65532:65532 /out/state

FROM build-base AS build
ARG SERVICE
RUN --mount=type=bind,target=. \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    test -n "${SERVICE:-}" || { echo "build with --build-arg SERVICE=<name>" >&2; exit 1; }; \
    if [ -d "services/${SERVICE}/cmd/${SERVICE}" ]; then pkg="./services/${SERVICE}/cmd/${SERVICE}"; \
    elif [ -d "emulators/cmd/${SERVICE}" ]; then pkg="./emulators/cmd/${SERVICE}"; \
    else echo "no binary named ${SERVICE} under services/ or emulators/cmd/" >&2; exit 1; fi; \
    go build -ldflags='-s -w' -o /out/app "$pkg"

FROM build-base AS build-migrate
RUN --mount=type=bind,target=. \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out/services && go build -ldflags='-s -w' -o /out/services/ ./services/*/cmd/*

# migrate: every service binary plus busybox's shell (the :debug variant of
# distroless) to run them one after another. Each binary migrates only its
# own schema, so the order does not matter; the first failure stops the run.
FROM ${DISTROLESS}:debug-nonroot AS migrate
COPY --from=build-migrate /out/services/ /usr/local/bin/cosell/
COPY --from=build-base /out/probe /usr/local/bin/probe
USER 65532:65532
ENTRYPOINT ["/busybox/sh", "-c", "set -e; for svc in /usr/local/bin/cosell/*; do echo \"migrate: ${svc##*/}\"; \"$svc\" migrate; done"]

# The default target: one binary.
FROM ${DISTROLESS}:nonroot AS service
ARG SERVICE
LABEL org.opencontainers.image.title="cosell ${SERVICE}" \
      org.opencontainers.image.source="https://github.com/cosell/cosell"
COPY --from=build-base /out/probe /usr/local/bin/probe
COPY --from=build-base --chown=65532:65532 /out/state/ /var/lib/cosell/
COPY --from=build /out/app /usr/local/bin/app
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/app"]
