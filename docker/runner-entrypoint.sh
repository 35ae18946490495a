#!/bin/sh
# Registers the runner on first boot (KILN_SERVER_URL, KILN_REGISTRATION_TOKEN, optional
# KILN_RUNNER_NAME), then runs the daemon with any arguments given to the container.
set -eu
if [ ! -f "$KILN_CONFIG_DIR/runner.yaml" ]; then
    : "${KILN_SERVER_URL:?set KILN_SERVER_URL to the control plane URL}"
    : "${KILN_REGISTRATION_TOKEN:?set KILN_REGISTRATION_TOKEN to a kiln_reg_ token}"
    kiln-runner register --name "${KILN_RUNNER_NAME:-$(hostname)}"
fi
# The registration token is spent; the daemon needs only its own token from runner.yaml.
unset KILN_REGISTRATION_TOKEN
exec kiln-runner run "$@"
