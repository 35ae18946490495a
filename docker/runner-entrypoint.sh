#!/bin/sh
# Registers the runner on first boot (KILN_SERVER_URL, KILN_REGISTRATION_TOKEN, optional
# KILN_RUNNER_NAME), then runs the daemon with any arguments given to the container.
#
# Started as root only to give the runner a /proc it can fence agents with: Docker masks
# parts of /proc, and the kernel lets a fence mount its agent's own /proc only where all of
# /proc is visible. With CAP_SYS_ADMIN (docker/compose.yaml adds it) a fresh /proc goes on
# top; then the daemon runs as the unprivileged `kiln` user with no capabilities at all.
set -eu
if [ "$(id -u)" = 0 ]; then
    mount -t proc -o nosuid,nodev,noexec proc /proc 2>/dev/null \
        || echo "kiln-runner: cannot mount a fresh /proc (no CAP_SYS_ADMIN): agents will not be fenced" >&2
    HOME=$(getent passwd kiln | cut -d: -f6)
    export HOME
    exec setpriv --reuid=kiln --regid=kiln --init-groups --inh-caps=-all --bounding-set=-all \
        --no-new-privs -- "$0" "$@"
fi
if [ ! -f "$KILN_CONFIG_DIR/runner.yaml" ]; then
    : "${KILN_SERVER_URL:?set KILN_SERVER_URL to the control plane URL}"
    : "${KILN_REGISTRATION_TOKEN:?set KILN_REGISTRATION_TOKEN to a kiln_reg_ token}"
    kiln-runner register --name "${KILN_RUNNER_NAME:-$(hostname)}"
fi
# The registration token is spent; the daemon needs only its own token from runner.yaml.
unset KILN_REGISTRATION_TOKEN
exec kiln-runner run "$@"
