{{/* Name of the chart, or nameOverride. */}}
{{- define "marketpulse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: "<release>-<name>", or the release name when it already contains the name.
Truncated to 63 characters because some Kubernetes name fields are limited to that (DNS labels).
*/}}
{{- define "marketpulse.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "marketpulse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of the operator's objects (Deployment, ServiceAccount, RBAC, Service, ...). */}}
{{- define "marketpulse.labels" -}}
{{ include "marketpulse.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object the chart renders; objects that are not the operator's add no component. */}}
{{- define "marketpulse.commonLabels" -}}
helm.sh/chart: {{ include "marketpulse.chart" . }}
app.kubernetes.io/name: {{ include "marketpulse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: marketpulse
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the operator's pods; never change them in an upgrade (selectors are immutable). */}}
{{- define "marketpulse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "marketpulse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "marketpulse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "marketpulse.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: set it to an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "repository:tag" or "repository@digest" from an image block, with fallbacks for empty fields. */}}
{{- define "marketpulse.imageRef" -}}
{{- $repository := .image.repository | default .fallback.repository }}
{{- $digest := .image.digest | default .fallback.digest }}
{{- if $digest }}
{{- printf "%s@%s" $repository $digest }}
{{- else }}
{{- printf "%s:%s" $repository (.image.tag | default .fallback.tag | default .appVersion) }}
{{- end }}
{{- end }}

{{- define "marketpulse.operatorImage" -}}
{{- include "marketpulse.imageRef" (dict "image" .Values.image "fallback" (dict) "appVersion" .Chart.AppVersion) }}
{{- end }}

{{- define "marketpulse.workloadImage" -}}
{{- include "marketpulse.imageRef" (dict "image" .Values.workloads.image "fallback" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* The namespaces the operator serves: empty when it serves all of them. */}}
{{- define "marketpulse.watchNamespaces" -}}
{{- if not .Values.operator.watchAnyNamespace }}
{{- $namespaces := .Values.operator.watchNamespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $namespaces) }}
{{- else }}
{{- toJson (list) }}
{{- end }}
{{- end }}

{{/* Name of the kopf peering object(s) the replicas meet in. */}}
{{- define "marketpulse.peeringName" -}}
{{- include "marketpulse.fullname" . }}
{{- end }}

{{/*
Rules for namespaced resources, shared by the ClusterRole (watchAnyNamespace) and the per-namespace
Roles. Together with the two cluster-scoped Framework rules in rbac.yaml they are exactly
marketpulse.operator.rbac.CLUSTER_RULES; a test keeps them equal.
*/}}
{{- define "marketpulse.namespacedRules" -}}
# Framework: peering, so that two replicas never act at once; the operator creates its
# peering object at start-up if the chart did not.
- apiGroups: ["kopf.dev"]
  resources: [{{ if .clusterwide }}"clusterkopfpeerings", {{ end }}"kopfpeerings"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Framework: kopf posts Events about handler errors; the operator about transitions.
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
# Application: the StockPipelines it reconciles (patch for the finalizer and kopf's annotations).
- apiGroups: ["marketpulse.io"]
  resources: ["stockpipelines"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["marketpulse.io"]
  resources: ["stockpipelines/status"]
  verbs: ["get", "patch"]
# Application: the children of a pipeline, applied server-side and pruned when the spec drops them.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["kafka.strimzi.io"]
  resources: ["kafkatopics", "kafkausers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors", "prometheusrules"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Application: storage.credentialsSecret, read to create the bucket, never copied or logged; and,
# created once (never updated): with direct topics and SCRAM, the pipeline's Kafka password;
# with security.s3Credentials not shared, the pipeline's own S3 credentials.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
# Application: the pods of its workloads, watched to say in the status why they cannot run; read only.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/* The operator's pod spec (one place, used by the Deployment). */}}
{{- define "marketpulse.podSpec" -}}
serviceAccountName: {{ include "marketpulse.serviceAccountName" . }}
automountServiceAccountToken: true
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
containers:
  - name: operator
    image: {{ include "marketpulse.operatorImage" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args:
      - operator
      - run
      - --peering={{ include "marketpulse.peeringName" . }}
      {{- range (include "marketpulse.watchNamespaces" . | fromJsonArray) }}
      - --namespace={{ . }}
      {{- end }}
      {{- if .Values.operator.verbose }}
      - --verbose
      {{- end }}
    env:
      - name: MARKETPULSE_IMAGE
        value: {{ include "marketpulse.workloadImage" . | quote }}
      - name: MARKETPULSE_IMAGE_PULL_POLICY
        value: {{ .Values.workloads.image.pullPolicy | quote }}
      - name: MARKETPULSE_RUN_AS_USER
        value: {{ .Values.workloads.runAsUser | quote }}
      - name: MARKETPULSE_SCRATCH_BASE
        value: {{ .Values.workloads.scratch.base | quote }}
      - name: MARKETPULSE_SCRATCH_GOLD
        value: {{ .Values.workloads.scratch.gold | quote }}
      - name: MARKETPULSE_SCRATCH_LOGS
        value: {{ .Values.workloads.scratch.logs | quote }}
      - name: MARKETPULSE_RESYNC_SECONDS
        value: {{ .Values.operator.resyncSeconds | quote }}
      - name: MARKETPULSE_CHILD_REFRESH_SECONDS
        value: {{ .Values.operator.childRefreshSeconds | quote }}
      - name: MARKETPULSE_KAFKA_TIMEOUT_SECONDS
        value: {{ .Values.operator.kafkaTimeoutSeconds | quote }}
      - name: MARKETPULSE_NETWORK_POLICIES
        value: {{ .Values.networkPolicy.pipelines.enabled | quote }}
      - name: MARKETPULSE_NETWORK_DASHBOARD_FROM
        value: {{ join "," .Values.networkPolicy.pipelines.dashboardFrom | quote }}
      - name: MARKETPULSE_NETWORK_METRICS_FROM
        value: {{ join "," .Values.networkPolicy.pipelines.metricsFrom | quote }}
      - name: MARKETPULSE_NETWORK_EXTRA_EGRESS_PORTS
        value: {{ join "," .Values.networkPolicy.pipelines.extraEgressPorts | quote }}
      - name: MARKETPULSE_NETWORK_DASHBOARD_PROBE_NAMESPACE
        value: {{ .Release.Namespace | quote }}
      - name: MARKETPULSE_SERVICE_MONITOR_LABELS
        value: {{ include "marketpulse.monitoringLabels" (dict "labels" .Values.metrics.serviceMonitor.labels "key" "metrics.serviceMonitor.labels") | quote }}
      - name: MARKETPULSE_PROMETHEUS_RULE_LABELS
        value: {{ include "marketpulse.monitoringLabels" (dict "labels" .Values.metrics.prometheusRule.labels "key" "metrics.prometheusRule.labels") | quote }}
      - name: MARKETPULSE_RUNBOOK_BASE_URL
        value: {{ .Values.metrics.prometheusRule.runbookBaseUrl | quote }}
      - name: MARKETPULSE_CLEANUP_ATTEMPTS
        value: {{ .Values.operator.cleanup.attempts | quote }}
      - name: MARKETPULSE_CLEANUP_PERMANENT_ATTEMPTS
        value: {{ .Values.operator.cleanup.permanentAttempts | quote }}
      - name: MARKETPULSE_CLEANUP_RETRY_SECONDS
        value: {{ .Values.operator.cleanup.retrySeconds | quote }}
      - name: MARKETPULSE_WORKLOAD_STOP_TIMEOUT_SECONDS
        value: {{ .Values.operator.cleanup.workloadStopTimeoutSeconds | quote }}
      - name: MARKETPULSE_METRICS_PORT
        value: {{ .Values.operator.metricsPort | quote }}
      - name: MARKETPULSE_HEALTH_PORT
        value: {{ .Values.operator.healthPort | quote }}
      - name: S3_ENDPOINT
        value: {{ .Values.s3.endpoint | quote }}
      - name: S3_REGION
        value: {{ .Values.s3.region | quote }}
      - name: MARKETPULSE_S3_CREDENTIALS_SECRET
        value: {{ .Values.s3.secretName | quote }}
      - name: MARKETPULSE_ALLOWED_S3_ENDPOINTS
        value: {{ join "," .Values.security.allowedS3Endpoints | quote }}
      - name: MARKETPULSE_ALLOWED_KAFKA_SERVERS
        value: {{ join "," .Values.security.allowedKafkaServers | quote }}
      - name: MARKETPULSE_ALLOWED_SNOWFLAKE_HOSTS
        value: {{ join "," .Values.security.allowedSnowflakeHosts | quote }}
      - name: MARKETPULSE_ALLOW_PLAIN_HTTP
        value: {{ .Values.security.allowPlainHttp | quote }}
      - name: MARKETPULSE_ADOPT_UNOWNED_BUCKETS
        value: {{ .Values.security.adoptUnownedBuckets | quote }}
      {{- include "marketpulse.kafkaLoginEnv" . | nindent 6 }}
      - name: MARKETPULSE_S3_IAM
        value: {{ .Values.security.s3Credentials | quote }}
      - name: S3_ACCESS_KEY
        valueFrom:
          secretKeyRef:
            name: {{ .Values.s3.secretName }}
            key: AWS_ACCESS_KEY_ID
      - name: S3_SECRET_KEY
        valueFrom:
          secretKeyRef:
            name: {{ .Values.s3.secretName }}
            key: AWS_SECRET_ACCESS_KEY
      {{- with .Values.operator.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    ports:
      - name: metrics
        containerPort: {{ .Values.operator.metricsPort }}
        protocol: TCP
      - name: health
        containerPort: {{ .Values.operator.healthPort }}
        protocol: TCP
    startupProbe:
      httpGet:
        path: /healthz
        port: health
      {{- toYaml .Values.startupProbe | nindent 6 }}
    livenessProbe:
      httpGet:
        path: /healthz
        port: health
      {{- toYaml .Values.livenessProbe | nindent 6 }}
    readinessProbe:
      httpGet:
        path: /healthz
        port: health
      {{- toYaml .Values.readinessProbe | nindent 6 }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
volumes:
  # The root filesystem is read-only; Python and kopf may still want a scratch directory.
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Name of the pre-delete hook's Job, ServiceAccount and RBAC (short enough for the Job's pod labels). */}}
{{- define "marketpulse.uninstallName" -}}
{{- printf "%s-uninstall" (include "marketpulse.fullname" . | trunc 53 | trimSuffix "-") }}
{{- end }}

{{/* The account the pre-delete hook runs as: its own with rbac.create, else one the user names. */}}
{{- define "marketpulse.uninstallServiceAccountName" -}}
{{- if .Values.rbac.create }}
{{- include "marketpulse.uninstallName" . }}
{{- else }}
{{- required "uninstall.serviceAccountName: required when rbac.create is false and uninstall.deletePipelines is true (an account that may list and delete StockPipelines in the served namespaces); or set uninstall.deletePipelines=false" .Values.uninstall.serviceAccountName }}
{{- end }}
{{- end }}

{{/* Annotations that make an object part of the pre-delete hook, created before the Job by weight. */}}
{{- define "marketpulse.uninstallHook" -}}
helm.sh/hook: pre-delete
helm.sh/hook-weight: {{ .weight | quote }}
# Removed once the Job succeeded; kept after a failure so that its pod's log says why.
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}

{{/* Labels of the pre-delete hook's objects. */}}
{{- define "marketpulse.uninstallLabels" -}}
{{ include "marketpulse.commonLabels" . }}
app.kubernetes.io/component: uninstall
{{- end }}

{{/* The chart's Kafka's super user (a KafkaUser), the operator's login when the chart makes the Kafka. */}}
{{- define "marketpulse.kafkaOperatorUser" -}}
{{- printf "%s-operator" (include "marketpulse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
MARKETPULSE_KAFKA_* of the operator's admin login: the chart's KafkaUser when the chart makes a SCRAM
Kafka and operator.kafkaLogin names no Secret; else operator.kafkaLogin. Passwords by secretKeyRef only.
*/}}
{{- define "marketpulse.kafkaLoginEnv" -}}
{{- $login := .Values.operator.kafkaLogin }}
{{- if and .Values.kafka.create (eq .Values.kafka.authentication "scram-sha-512") (not $login.secretName) }}
{{- $user := include "marketpulse.kafkaOperatorUser" . }}
- name: MARKETPULSE_KAFKA_SECURITY_PROTOCOL
  value: SASL_PLAINTEXT
- name: MARKETPULSE_KAFKA_SASL_MECHANISM
  value: SCRAM-SHA-512
- name: MARKETPULSE_KAFKA_SASL_USERNAME
  value: {{ $user | quote }}
- name: MARKETPULSE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $user }}
      key: password
{{- else if hasPrefix "SASL_" $login.securityProtocol }}
{{- $secret := required "operator.kafkaLogin.secretName: required with a SASL securityProtocol (a Secret with keys username and password)" $login.secretName }}
- name: MARKETPULSE_KAFKA_SECURITY_PROTOCOL
  value: {{ $login.securityProtocol | quote }}
- name: MARKETPULSE_KAFKA_SASL_MECHANISM
  value: {{ $login.saslMechanism | quote }}
- name: MARKETPULSE_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: username
- name: MARKETPULSE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: password
{{- else }}
- name: MARKETPULSE_KAFKA_SECURITY_PROTOCOL
  value: {{ $login.securityProtocol | quote }}
{{- end }}
{{- end }}

{{/* The label of the `helm test` pod that pipelines' NetworkPolicies let reach their dashboards
(marketpulse.operator.builders.network.DASHBOARD_PROBE_LABEL; a test keeps them equal). */}}
{{- define "marketpulse.dashboardProbeLabel" -}}
marketpulse.io/dashboard-probe
{{- end }}

{{/*
Extra labels of ServiceMonitors or PrometheusRules as JSON, refusing what is no label name and keys
the chart and the operator set themselves (the operator selects and prunes its objects by them; its
settings refuse the same). Keys here, not in values.schema.json, whose propertyNames errors name no key.
*/}}
{{- define "marketpulse.monitoringLabels" -}}
{{- range $key, $_ := .labels }}
{{- if not (regexMatch "^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$" $key) }}
{{- fail (printf "%s: %q is not a label name: an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.', e.g. release or example.com/team" $.key $key) }}
{{- end }}
{{- if regexMatch "^([^/]*[.])?(kubernetes[.]io|k8s[.]io|marketpulse[.]io)/" $key }}
{{- fail (printf "%s: %q is reserved: labels under kubernetes.io, k8s.io, marketpulse.io and their sub-domains are set by the chart and the operator" $.key $key) }}
{{- end }}
{{- end }}
{{- toJson .labels }}
{{- end }}
