#!/usr/bin/env bash
# Builds the control plane envtest runs against — kube-apiserver, kubectl and etcd —
# from the Go module proxy into one folder, because no download site for release
# binaries is reachable from where hubflow is built and tested.
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

kube=()
missing kube-apiserver && kube+=(k8s.io/kubernetes/cmd/kube-apiserver)
missing kubectl && kube+=(k8s.io/kubernetes/cmd/kubectl)
if ((${#kube[@]} > 0)); then
	names=("${kube[@]##*/}")
	echo "building ${names[*]} ${KUBE_VERSION} into $dest (about 4 minutes for kube-apiserver on 2 cores the first time, seconds with a warm Go build cache)…"
	start=$SECONDS
	(cd "$root/hack/tools/kube" && go build -mod=readonly -ldflags "-s -w${kube_ldflags}" -o "$dest/" "${kube[@]}")
	elapsed "$start"
fi

if missing etcd; then
	echo "building etcd into $dest (about a minute the first time)…"
	start=$SECONDS
	(cd "$root/hack/tools/etcd" && go build -mod=readonly -ldflags "-s -w" -o "$dest/etcd" go.etcd.io/etcd/server/v3)
	elapsed "$start"
fi

echo "envtest binaries ready in $dest:"
# Capture, then print: piping into `head` would kill etcd with SIGPIPE under pipefail.
apiserver_version="$("$dest/kube-apiserver" --version)"
etcd_version="$("$dest/etcd" --version)"
echo "  $apiserver_version"
echo "  ${etcd_version%%$'\n'*}"
