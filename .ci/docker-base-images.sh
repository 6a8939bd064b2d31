#!/usr/bin/env bash
# docker-base-images.sh makes, with no container registry, the base images that
# the project's Dockerfile and compose file name, so that those files stay the
# ones a user would write:
#
#   golang:1.26-bookworm  build stage: busybox sh and coreutils (Debian's
#                         busybox-static), this machine's Go tree from
#                         /usr/local/go, the CA bundle; PATH, GOPATH=/go,
#                         GOTOOLCHAIN=local and WORKDIR /go as in the official
#                         image. No apt, git or gcc: build with CGO_ENABLED=0.
#   redis:7-bookworm      Debian's redis-server and redis-cli with the shared
#                         libraries they load, busybox sh, user redis
#                         (999:999), WORKDIR /data, EXPOSE 6379. Like the
#                         official image, its entrypoint accepts
#                         `redis-server ARGS`, bare `--option` ARGS, or a
#                         config file, and turns protected mode off so that
#                         other containers can connect.
#
# Go modules inside a build: the Go tree copied in carries /usr/local/go/go.env,
# so `go mod download` in a build stage uses the same module proxy as this
# machine, and containers on the default bridge network reach it. No BuildKit
# cache mount or vendoring is needed. (BuildKit: the docker CLI at
# /usr/local/bin is 28.x and has no buildx plugin, so it builds with the legacy
# builder; DOCKER_BUILDKIT=1 works only with Debian's 20.10 CLI at
# /usr/bin/docker. The Dockerfile therefore uses no BuildKit-only syntax.)
#
# An image is rebuilt only when its inputs change: they are hashed into the
# label io.handoff.ci.inputs and compared on the next run.
set -euo pipefail

GO_IMAGE=golang:1.26-bookworm
REDIS_IMAGE=redis:7-bookworm
LABEL=io.handoff.ci.inputs

GOROOT_HOST=$(go env GOROOT)
SELF=$(readlink -f "$0")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { echo "docker-base-images: $*"; }

pkg_version() { dpkg-query -W -f='${Version}' "$1"; }

inputs_hash() {
	{
		echo "script $(sha256sum <"$SELF")"
		printf '%s\n' "$@"
	} | sha256sum | cut -d' ' -f1
}

image_current() {
	local have
	have=$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null) || return 1
	[[ $have == "$2" ]]
}

# drop_replaced IMAGE_ID removes an image that a rebuild left untagged.
drop_replaced() {
	[[ -n $1 ]] || return 0
	if [[ $(docker image inspect -f '{{ len .RepoTags }}' "$1" 2>/dev/null) == 0 ]]; then
		docker image rm "$1" >/dev/null 2>&1 || true
	fi
}

# new_rootfs DIR makes a merged-/usr skeleton with busybox as sh and coreutils.
new_rootfs() {
	local root=$1 applet
	mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,root,tmp,var/tmp,etc/ssl/certs}
	ln -s usr/bin "$root/bin"
	ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	chmod 1777 "$root/tmp" "$root/var/tmp"
	chmod 0700 "$root/root"
	cp /bin/busybox "$root/usr/bin/busybox"
	while read -r applet; do
		[[ $applet == linuxrc || -e $root/$applet || -L $root/$applet ]] ||
			ln -s /usr/bin/busybox "$root/$applet"
	done < <(/bin/busybox --list-full)
	cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
	echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
	cat >"$root/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
	EOF
	cat >"$root/etc/group" <<-'EOF'
		root:x:0:
		nogroup:x:65534:
	EOF
}

# copy_with_libs ROOT BINARY... copies each binary and every shared library
# that ldd lists for it, keeping their paths.
copy_with_libs() {
	local root=$1 f
	shift
	for f in "$@"; do
		cp --parents -L "$f" "$root/"
		ldd "$f" | grep -oE '/[^ ]+' | while read -r f; do
			cp --parents -L "$f" "$root/"
		done
	done
}

build_go_image() {
	local goversion hash root old
	goversion=$(go env GOVERSION)
	hash=$(inputs_hash "go $goversion $(sha256sum <"$GOROOT_HOST/go.env")" \
		"busybox $(pkg_version busybox-static)" "ca $(pkg_version ca-certificates)")
	if image_current "$GO_IMAGE" "$hash"; then
		log "$GO_IMAGE is up to date"
		return
	fi
	log "building $GO_IMAGE from $GOROOT_HOST ($goversion)"
	old=$(docker image inspect -f '{{ .Id }}' "$GO_IMAGE" 2>/dev/null || true)
	root=$work/go
	new_rootfs "$root"
	mkdir -p "$root/go/bin" "$root/go/src" "$root/usr/local"
	chmod -R 1777 "$root/go"
	tar --numeric-owner -C "$root" -cf - . \
		--transform "s|^${GOROOT_HOST#/}|usr/local/go|" -C / "${GOROOT_HOST#/}" |
		docker import \
			--change "ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
			--change "ENV GOLANG_VERSION=${goversion#go}" \
			--change "ENV GOTOOLCHAIN=local" \
			--change "ENV GOPATH=/go" \
			--change "WORKDIR /go" \
			--change "LABEL $LABEL=$hash" \
			--change 'CMD ["sh"]' \
			- "$GO_IMAGE" >/dev/null
	drop_replaced "$old"
}

build_redis_image() {
	local hash root old
	hash=$(inputs_hash "redis $(pkg_version redis-server) $(pkg_version redis-tools)" \
		"busybox $(pkg_version busybox-static)" "ca $(pkg_version ca-certificates)")
	if image_current "$REDIS_IMAGE" "$hash"; then
		log "$REDIS_IMAGE is up to date"
		return
	fi
	log "building $REDIS_IMAGE from Debian's redis-server $(pkg_version redis-server)"
	old=$(docker image inspect -f '{{ .Id }}' "$REDIS_IMAGE" 2>/dev/null || true)
	root=$work/redis
	new_rootfs "$root"
	copy_with_libs "$root" /usr/bin/redis-server /usr/bin/redis-cli
	echo 'redis:x:999:999::/data:/usr/sbin/nologin' >>"$root/etc/passwd"
	echo 'redis:x:999:' >>"$root/etc/group"
	mkdir -p "$root/data" "$root/usr/local/bin"
	chown 999:999 "$root/data"
	cat >"$root/usr/local/bin/docker-entrypoint.sh" <<-'EOF'
		#!/bin/sh
		set -e
		# An option or a config file as the first argument is for redis-server.
		if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
			set -- redis-server "$@"
		fi
		# Without a config file, turn protected mode off (as the official image
		# does) so that other containers may connect; later options override it.
		if [ "$1" = redis-server ]; then
			case "${2:---}" in
			-v | --version | -h | --help | --test-memory) ;;
			--*)
				shift
				set -- redis-server --protected-mode no "$@"
				;;
			esac
		fi
		exec "$@"
	EOF
	chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"
	tar --numeric-owner -C "$root" -cf - . |
		docker import \
			--change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
			--change "USER redis" \
			--change "WORKDIR /data" \
			--change "VOLUME /data" \
			--change "EXPOSE 6379" \
			--change "LABEL $LABEL=$hash" \
			--change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
			--change 'CMD ["redis-server"]' \
			- "$REDIS_IMAGE" >/dev/null
	drop_replaced "$old"
}

build_go_image
build_redis_image
