# Dockerfile builds one of the two services into a static binary on an empty
# (scratch) image that runs as a non-root user:
#
#   docker build --build-arg SERVICE=server1 -t handoff-server1 .
#   docker build --build-arg SERVICE=server2 --build-arg PORT=8082 -t handoff-server2 .
#
# SERVICE is required (server1 or server2). PORT (default 8081, server1's demo
# port; server2's is 8082) only sets EXPOSE: the service reads its listen
# address from its configuration, which in a container must not be loopback.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
ARG SERVICE
COPY . .
RUN case "$SERVICE" in \
	server1 | server2) ;; \
	*) echo "build arg SERVICE must be server1 or server2, got '$SERVICE'" >&2; exit 1 ;; \
	esac; \
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/app "./${SERVICE}"

FROM scratch
ARG PORT=8081
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/app /app
USER 65532:65532
EXPOSE ${PORT}
ENTRYPOINT ["/app"]
