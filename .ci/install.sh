#!/usr/bin/env bash
# install.sh installs what the build, the tests and CI need on a Debian 12
# machine: Chromium and Redis for the end-to-end tests, busybox-static for the
# offline Docker base images (.ci/docker-base-images.sh), staticcheck, and the
# Go modules. It is safe to rerun: each step is skipped when already done.
# redis-server depends on redis-tools (redis-cli, which the Cluster test
# uses), and the Sentinel test runs `redis-server --sentinel`, so Redis needs
# no other package.
#
# Compose: CI uses Debian's docker-compose (1.29). The `docker compose` v2
# plugin is not in Debian 12; building it from its Go module (v2.40.3, as the
# module's own main module since `go install` refuses its exclude directives)
# works with this Docker engine but costs about 9 CPU-minutes, so it is not
# installed here.
set -euo pipefail

# staticcheck 2026.x (module version v0.8.x) understands Go 1.26.
STATICCHECK_VERSION=v0.8.2

APT_PACKAGES=(
	ca-certificates
	chromium
	redis-server
	busybox-static
	docker-compose
)

cd "$(dirname "$0")/.."

as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	else
		sudo "$@"
	fi
}

installed() {
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
	installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
	echo "install: apt packages: ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "${missing[@]}"
else
	echo "install: apt packages already installed"
fi

gobin=$(go env GOBIN)
[[ -n $gobin ]] || gobin="$(go env GOPATH)/bin"

# Rebuild staticcheck when the pinned version or the Go toolchain changes: a
# binary built by an older Go cannot load packages written for a newer one.
staticcheck_ok() {
	local bin="$gobin/staticcheck" info
	[[ -x $bin ]] || return 1
	info=$(go version -m "$bin" 2>/dev/null) || return 1
	grep -q "^$bin: $(go env GOVERSION)\$" <<<"$info" &&
		grep -Eq "^[[:space:]]+mod[[:space:]]+honnef.co/go/tools[[:space:]]+$STATICCHECK_VERSION[[:space:]]" <<<"$info"
}
if staticcheck_ok; then
	echo "install: staticcheck $STATICCHECK_VERSION already installed"
else
	echo "install: staticcheck $STATICCHECK_VERSION"
	go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

echo "install: go mod download"
go mod download
