#!/usr/bin/env bash
# Create a kind cluster with everything MarketPulse needs and one pipeline, and wait until it is Ready:
# ingress-nginx, Strimzi (its chart), MinIO (its chart), the MarketPulse image and chart, the sample.
#
#   bash k8s-tests/kind/up.sh                 # then: export KUBECONFIG=.marketpulse/kind/kubeconfig
#   .venv/bin/pytest k8s-tests --use-existing-cluster
#   bash k8s-tests/kind/down.sh
#
# Needs docker, kind, kubectl and helm on PATH, and network access to the chart repositories and
# container registries below. Versions are pinned here; override any of them from the environment.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${CLUSTER:-marketpulse}
NAMESPACE=${NAMESPACE:-marketpulse}
IMAGE_REPOSITORY=${IMAGE_REPOSITORY:-ghcr.io/marketpulse/marketpulse}
IMAGE_TAG=${IMAGE_TAG:-dev}
STRIMZI_VERSION=${STRIMZI_VERSION:-1.2.0}
MINIO_CHART_VERSION=${MINIO_CHART_VERSION:-5.4.0}
INGRESS_NGINX_VERSION=${INGRESS_NGINX_VERSION:-controller-v1.14.1}
SAMPLE=${SAMPLE:-operator/config/samples/stockpipeline-synthetic-duckdb.yaml}
TIMEOUT=${TIMEOUT:-15m}
STATE=.marketpulse/kind
export KUBECONFIG=${KUBECONFIG_OUT:-$STATE/kubeconfig}

step() { printf '\n==> %s\n' "$*"; }
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not on PATH" >&2; exit 1; }
done
mkdir -p "$STATE"

step "kind cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config k8s-tests/kind/cluster.yaml --kubeconfig "$KUBECONFIG"
else
  kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG"
fi
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -

step "ingress-nginx $INGRESS_NGINX_VERSION"
kubectl apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/$INGRESS_NGINX_VERSION/deploy/static/provider/kind/deploy.yaml"
kubectl -n ingress-nginx wait deployment/ingress-nginx-controller --for=condition=Available --timeout=5m

step "Strimzi $STRIMZI_VERSION (watching $NAMESPACE)"
helm upgrade --install strimzi strimzi-kafka-operator --repo https://strimzi.io/charts/ \
  --version "$STRIMZI_VERSION" --namespace "$NAMESPACE" --wait --timeout 10m

step "image $IMAGE_REPOSITORY:$IMAGE_TAG"
if [[ -z "${SKIP_BUILD:-}" ]]; then
  docker build -f images/marketpulse/Dockerfile -t "$IMAGE_REPOSITORY:$IMAGE_TAG" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" .
fi
kind load docker-image "$IMAGE_REPOSITORY:$IMAGE_TAG" --name "$CLUSTER"

step "MarketPulse chart (Kafka cluster, S3 Secret, operator)"
# Installed before MinIO: the chart creates the Secret MinIO reads its root credentials from.
helm upgrade --install marketpulse charts/marketpulse --namespace "$NAMESPACE" \
  --values k8s-tests/kind/values.yaml \
  --set image.repository="$IMAGE_REPOSITORY" --set image.tag="$IMAGE_TAG" \
  --set workloads.image.repository="$IMAGE_REPOSITORY" --set workloads.image.tag="$IMAGE_TAG" \
  --wait --timeout 10m
# helm never upgrades crds/; apply them so that a re-run picks up CRD changes.
kubectl apply --server-side --force-conflicts -f charts/marketpulse/crds/

step "S3: MinIO $MINIO_CHART_VERSION from its own chart (AGPL-3.0; not built or vendored by MarketPulse)"
helm upgrade --install marketpulse-minio minio --repo https://charts.min.io/ \
  --version "$MINIO_CHART_VERSION" --namespace "$NAMESPACE" \
  --set fullnameOverride=marketpulse-minio --set mode=standalone --set replicas=1 \
  --set existingSecret=marketpulse-s3 --set persistence.size=5Gi --set resources.requests.memory=256Mi \
  --wait --timeout 10m

step "Kafka cluster Ready"
kubectl -n "$NAMESPACE" wait kafka/marketpulse --for=condition=Ready --timeout="$TIMEOUT"

step "sample pipeline $SAMPLE"
kubectl -n "$NAMESPACE" apply --server-side -f "$SAMPLE"
name=$(kubectl apply --dry-run=client -f "$SAMPLE" -o jsonpath='{.metadata.name}')
kubectl -n "$NAMESPACE" wait "stockpipeline/$name" --for=condition=Ready --timeout="$TIMEOUT"
kubectl -n "$NAMESPACE" get stockpipelines

cat <<MSG

Ready. The cluster's kubeconfig is $KUBECONFIG:
  export KUBECONFIG=$KUBECONFIG
  .venv/bin/pytest k8s-tests --use-existing-cluster     # the k8s-tests suite against this cluster
  kubectl -n $NAMESPACE port-forward service/$name-dashboard 8501:80   # dashboard on http://localhost:8501
  (or http://localhost/ through ingress-nginx)
Remove everything: bash k8s-tests/kind/down.sh
MSG
