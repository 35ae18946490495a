#!/bin/sh
# Makes the base images kiln's images build on, from Debian's packages alone (no registry):
#   kiln-base:bookworm       minbase + git, ca-certificates, openssh-client
#   kiln-toolchain:bookworm  the above + the common agent toolchain (curl, python3, make,
#                            jq, ripgrep, nodejs, npm, procps, less, patch, unzip)
# An image that exists already is kept; pass --force to make it again.
# Needs mmdebstrap (apt-get install mmdebstrap) and a Docker engine.
# Users with a registry build from debian:bookworm-slim instead; see docker/README.md.
set -eu

force=0
[ "${1:-}" = "--force" ] && force=1

suite=bookworm
mirror=${KILN_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
fi
mirror=${mirror:-http://deb.debian.org/debian}

base_packages=git,ca-certificates,openssh-client
toolchain_packages=$base_packages,curl,python3,make,jq,ripgrep,nodejs,npm,procps,less,patch,unzip

command -v mmdebstrap >/dev/null || { echo "base.sh: mmdebstrap not found: apt-get install mmdebstrap" >&2; exit 2; }
command -v docker >/dev/null || { echo "base.sh: docker not found" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

make_base() {
    image=$1
    packages=$2
    if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
        echo "base.sh: $image exists (--force makes it again)"
        return
    fi
    echo "base.sh: making $image from $mirror ($suite, $packages)"
    start=$(date +%s)
    mmdebstrap --quiet --variant=minbase --include="$packages" \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        "$suite" "$work/rootfs.tar" "$mirror"
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        "$work/rootfs.tar" "$image" >/dev/null
    rm -f "$work/rootfs.tar"
    echo "base.sh: $image made in $(( $(date +%s) - start )) s"
}

make_base kiln-base:$suite "$base_packages"
make_base kiln-toolchain:$suite "$toolchain_packages"
