#!/usr/bin/env bash
# Delete the kind cluster that up.sh created (and everything in it).
set -euo pipefail
cd "$(dirname "$0")/../.."
kind delete cluster --name "${CLUSTER:-marketpulse}"
rm -f .marketpulse/kind/kubeconfig
