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
COPY . .
# Both services in one step that does not depend on SERVICE, so the images
# of server1 and server2 share one cached compile. healthcheck GETs a URL
# and exits 0 on 200: the probe for a container healthcheck, as the image
# below has no shell or curl. /out/data belongs to the service's user, so a
# named volume mounted at /data (SERVER1's keys) starts out writable by it.
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/ ./server1 ./server2 ./cmd/healthcheck && \
	mkdir -p /out/data && chown 65532:65532 /out/data

FROM build AS service
ARG SERVICE
RUN case "$SERVICE" in \
	server1 | server2) ;; \
	*) echo "build arg SERVICE must be server1 or server2, got '$SERVICE'" >&2; exit 1 ;; \
	esac; \
	cp "/out/${SERVICE}" /out/app

FROM scratch
ARG PORT=8081
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=service /out/app /app
COPY --from=build /out/healthcheck /healthcheck
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE ${PORT}
ENTRYPOINT ["/app"]
