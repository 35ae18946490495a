#!/bin/sh
# Builds kiln's images from what is on this machine:
#   kiln-binaries:TAG  the binaries (from --bin-dir, else a fresh `cargo build --release`)
#   kiln:TAG           the control plane        (Dockerfile)
#   kiln-runner:TAG    the runner daemon        (Dockerfile.runner)
#   kiln-sandbox:TAG   the per-task sandbox     (Dockerfile.sandbox)
# Options: --bin-dir DIR, --tag TAG (default latest), --base IMAGE (default
# kiln-base:bookworm), --toolchain IMAGE (default kiln-toolchain:bookworm).
# The default bases come from docker/base.sh, which this runs first when they are missing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin_dir=
tag=latest
base=kiln-base:bookworm
toolchain=kiln-toolchain:bookworm
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        --toolchain) toolchain=$2; shift 2 ;;
        *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

if [ -z "$bin_dir" ]; then
    echo "build.sh: cargo build --release"
    (cd "$root" && cargo build --release --locked --bin kiln --bin kiln-runner)
    bin_dir=$root/target/release
fi
for binary in kiln kiln-runner; do
    [ -x "$bin_dir/$binary" ] || { echo "build.sh: $bin_dir/$binary not found" >&2; exit 2; }
done

case "$base$toolchain" in
    *kiln-base:bookworm*|*kiln-toolchain:bookworm*) "$here/base.sh" ;;
esac

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir "$context/bin"
cp "$bin_dir/kiln" "$bin_dir/kiln-runner" "$context/bin/"
cp "$here/runner-entrypoint.sh" "$context/"

build() {
    image=$1
    shift
    echo "build.sh: building $image"
    start=$(date +%s)
    docker build --quiet --tag "$image" "$@" "$context" >/dev/null
    echo "build.sh: $image built in $(( $(date +%s) - start )) s"
}

build "kiln-binaries:$tag" --file "$here/Dockerfile.binaries"
build "kiln:$tag" --file "$here/Dockerfile" \
    --build-arg "BASE=$base" --build-arg "BINARIES=kiln-binaries:$tag"
build "kiln-runner:$tag" --file "$here/Dockerfile.runner" \
    --build-arg "BASE=$base" --build-arg "BINARIES=kiln-binaries:$tag"
build "kiln-sandbox:$tag" --file "$here/Dockerfile.sandbox" \
    --build-arg "BASE=$toolchain" --build-arg "BINARIES=kiln-binaries:$tag"
