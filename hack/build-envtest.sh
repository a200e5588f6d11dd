#!/usr/bin/env bash
# Provides the control plane envtest runs against — kube-apiserver, kubectl and etcd —
# in one folder. First it tries the official envtest release binaries (the ones
# controller-runtime's setup-envtest installs, from controller-tools' GitHub
# releases), checked against the sha512 the release index publishes; where that
# download site cannot be reached (as on the machines hubflow is developed on),
# or the version is not released there, it builds them from the Go module proxy.
# It says which path it took and why. ENVTEST_DOWNLOAD=0 skips the download.
#
# Usage: hack/build-envtest.sh [DEST]   (default: bin/k8s-1.37.2)
#
# The pinned versions live in hack/tools/kube/go.mod (k8s.io/kubernetes) and
# hack/tools/etcd/go.mod (go.etcd.io/etcd/server/v3). A binary already in DEST is
# kept as is: delete it (or DEST) to rebuild, for example after changing a pin.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The pin in hack/tools/kube/go.mod is the single source of the version.
KUBE_VERSION="$(cd "$root/hack/tools/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
dest="${1:-$root/bin/k8s-${KUBE_VERSION#v}}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

# -mod=readonly: the go.mod and go.sum of each tool module are complete and must not
# change during a build. Compiler settings are left at Go's defaults on purpose, so a
# warm Go build cache (from an earlier run or a plain `go build`) is reused: only the
# link step reruns.
# What `kube-apiserver --version` and the /version endpoint report; without these a
# module build says v0.0.0-master.
IFS=. read -r major minor _ <<<"${KUBE_VERSION#v}"
kube_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	kube_ldflags+=" -X $pkg.gitTreeState=clean"
done

missing() {
	local name
	for name in "$@"; do
		[[ -x "$dest/$name" ]] || return 0
	done
	return 1
}

elapsed() {
	echo "  done in $((SECONDS - $1))s"
}

# progress runs a long command, printing the time spent every 30s so a
# first build does not look stuck.
progress() {
	"$@" &
	local pid=$! start=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if (((SECONDS - start) % 30 == 0)); then
			echo "  … still building ($((SECONDS - start))s)"
		fi
	done
	wait "$pid"
}

# download fetches the release tarball for this OS and architecture into
# DEST when the release index lists it, verifying its sha512. It fails
# (returns non-zero, leaving DEST as it was) on any problem, saying which.
download() {
	local version="${KUBE_VERSION#v}" os arch
	os="$(go env GOOS)" arch="$(go env GOARCH)"
	local name="envtest-v${version}-${os}-${arch}.tar.gz"
	# The two URLs can be pointed elsewhere (a mirror; the test of this path).
	local index_url="${ENVTEST_INDEX_URL:-https://raw.githubusercontent.com/kubernetes-sigs/controller-tools/HEAD/envtest-releases.yaml}"
	local url="${ENVTEST_RELEASES_URL:-https://github.com/kubernetes-sigs/controller-tools/releases/download}/envtest-v${version}/${name}"
	command -v curl >/dev/null || { echo "  no curl on this machine"; return 1; }
	local tmp
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' RETURN
	if ! curl -fsSL --connect-timeout 10 --max-time 60 -o "$tmp/index.yaml" "$index_url" 2>"$tmp/err"; then
		echo "  the release index is unreachable ($(tail -1 "$tmp/err"))"
		return 1
	fi
	# The index lists, per version, each archive's selfLink and hash.
	local want
	want="$(grep -A2 "${name}" "$tmp/index.yaml" | sed -n 's/.*hash: *\([0-9a-f]\{128\}\).*/\1/p' | head -1)"
	if [[ -z "$want" ]]; then
		echo "  the release index has no ${name}"
		return 1
	fi
	echo "  downloading ${name}…"
	if ! curl -fsSL --connect-timeout 10 --max-time 600 -o "$tmp/$name" "$url" 2>"$tmp/err"; then
		echo "  the download failed ($(tail -1 "$tmp/err"))"
		return 1
	fi
	if [[ "$(sha512sum "$tmp/$name" | cut -d' ' -f1)" != "$want" ]]; then
		echo "  ${name} does not match the sha512 the release index gives; not used"
		return 1
	fi
	tar -xzf "$tmp/$name" -C "$tmp"
	local bin
	for bin in kube-apiserver kubectl etcd; do
		[[ -x "$tmp/controller-tools/envtest/$bin" ]] || { echo "  ${name} holds no $bin"; return 1; }
	done
	cp "$tmp/controller-tools/envtest/"{kube-apiserver,kubectl,etcd} "$dest/"
}

if missing kube-apiserver kubectl etcd && [[ "${ENVTEST_DOWNLOAD:-1}" != 0 ]]; then
	echo "trying the official envtest release binaries ${KUBE_VERSION} (setup-envtest's source)…"
	start=$SECONDS
	if download; then
		echo "  downloaded and verified in $((SECONDS - start))s: using the release binaries"
	else
		echo "  falling back to building from the Go module proxy"
	fi
fi

kube=()
missing kube-apiserver && kube+=(k8s.io/kubernetes/cmd/kube-apiserver)
missing kubectl && kube+=(k8s.io/kubernetes/cmd/kubectl)
if ((${#kube[@]} > 0)); then
	names=("${kube[@]##*/}")
	echo "building ${names[*]} ${KUBE_VERSION} into $dest (about 4 minutes for kube-apiserver on 2 cores the first time, seconds with a warm Go build cache)…"
	start=$SECONDS
	(cd "$root/hack/tools/kube" && progress go build -mod=readonly -ldflags "-s -w${kube_ldflags}" -o "$dest/" "${kube[@]}")
	elapsed "$start"
fi

if missing etcd; then
	echo "building etcd into $dest (about a minute the first time)…"
	start=$SECONDS
	(cd "$root/hack/tools/etcd" && progress go build -mod=readonly -ldflags "-s -w" -o "$dest/etcd" go.etcd.io/etcd/server/v3)
	elapsed "$start"
fi

echo "envtest binaries ready in $dest:"
# Capture, then print: piping into `head` would kill etcd with SIGPIPE under pipefail.
apiserver_version="$("$dest/kube-apiserver" --version)"
etcd_version="$("$dest/etcd" --version)"
echo "  $apiserver_version"
echo "  ${etcd_version%%$'\n'*}"
