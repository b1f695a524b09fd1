{{/*
The chart name, overridable with nameOverride.
*/}}
{{- define "stream-monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: the release name, plus the chart name unless the release
name already holds it. Truncated to 63 characters (DNS label limit).
*/}}
{{- define "stream-monitor.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "stream-monitor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels of every resource.
*/}}
{{- define "stream-monitor.labels" -}}
helm.sh/chart: {{ include "stream-monitor.chart" . }}
{{ include "stream-monitor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stream-monitor
{{- end }}

{{/*
Selector labels: stable across upgrades, so never include versions here.
*/}}
{{- define "stream-monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stream-monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount name.
*/}}
{{- define "stream-monitor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stream-monitor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference.
*/}}
{{- define "stream-monitor.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The port the monitor serves /metrics, /healthz and /readyz on: config.metrics.port, so the
container, probes and Service always agree with the monitor's own config.
*/}}
{{- define "stream-monitor.metricsPort" -}}
{{- $metrics := .Values.config.metrics | default dict }}
{{- $metrics.port | default 9108 | int }}
{{- end }}

{{/*
The rendered monitor.yaml (shared by the ConfigMap and the checksum/config annotation).
*/}}
{{- define "stream-monitor.configYaml" -}}
{{- toYaml .Values.config }}
{{- end }}

{{/*
The consumer group of the monitor (config.kafka.group_id), defaulting like the monitor does.
*/}}
{{- define "stream-monitor.groupId" -}}
{{- dig "kafka" "group_id" "" .Values.config | default "stream-monitor" }}
{{- end }}

{{/*
The input topic of the monitor (config.kafka.topics.events), defaulting like the monitor does.
*/}}
{{- define "stream-monitor.eventsTopic" -}}
{{- dig "kafka" "topics" "events" "" .Values.config | default "inference-events" }}
{{- end }}

{{/*
Helpers called with a dict {root: the chart's context, component: "" | "ingest" | "aggregate"}.
The component "" is the single Deployment running every role (scaleOut.enabled=false); its
names and labels are exactly those of the chart without scale-out.
*/}}

{{/*
A component's resource name: the full name, suffixed with the component.
*/}}
{{- define "stream-monitor.componentName" -}}
{{- $fullname := include "stream-monitor.fullname" .root }}
{{- if .component }}
{{- printf "%s-%s" ($fullname | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component }}
{{- else }}
{{- $fullname }}
{{- end }}
{{- end }}

{{/*
A component's labels: the standard labels plus app.kubernetes.io/component.
*/}}
{{- define "stream-monitor.componentLabels" -}}
{{ include "stream-monitor.labels" .root }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/*
A component's selector labels: the chart's selector labels plus app.kubernetes.io/component, so
each role's Deployment and PodDisruptionBudget select only that role's pods while the Service
(which uses the chart's selector labels) selects the pods of every role.
*/}}
{{- define "stream-monitor.componentSelectorLabels" -}}
{{ include "stream-monitor.selectorLabels" .root }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/*
A monitor Deployment, shared by the single Deployment and the scale-out roles. Called with a
dict: root, component (also the `--role` argument; "" passes no --role, i.e. role all),
replicas (absent: left to an autoscaler) and resources (the container's resources).
*/}}
{{- define "stream-monitor.deployment" -}}
{{- $root := .root -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "stream-monitor.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "stream-monitor.componentLabels" . | nindent 4 }}
spec:
  {{- if hasKey . "replicas" }}
  replicas: {{ .replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "stream-monitor.componentSelectorLabels" . | nindent 6 }}
  template:
    metadata:
      annotations:
        # Roll the pods when the monitor config changes.
        checksum/config: {{ include "stream-monitor.configYaml" $root | sha256sum }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "stream-monitor.componentLabels" . | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "stream-monitor.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automount }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      containers:
        - name: stream-monitor
          image: {{ include "stream-monitor.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            - run
            - --config
            - /etc/stream-monitor/monitor.yaml
            {{- with .component }}
            - --role
            - {{ . }}
            {{- end }}
            {{- range $root.Values.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          ports:
            - name: http-metrics
              containerPort: {{ include "stream-monitor.metricsPort" $root }}
              protocol: TCP
          env:
            - name: KAFKA_BOOTSTRAP_SERVERS
              value: {{ $root.Values.kafka.bootstrapServers | quote }}
            {{- if $root.Values.kafka.existingSecret }}
            {{- range $envName, $key := $root.Values.kafka.existingSecretKeys }}
            - name: {{ $envName }}
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.kafka.existingSecret }}
                  key: {{ $key }}
            {{- end }}
            {{- end }}
            {{- with $root.Values.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with $root.Values.envFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http-metrics
            {{- toYaml $root.Values.livenessProbe | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http-metrics
            {{- toYaml $root.Values.readinessProbe | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          {{- with .resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: config
              mountPath: /etc/stream-monitor
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- with $root.Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "stream-monitor.fullname" $root }}
            items:
              - key: monitor.yaml
                path: monitor.yaml
        - name: tmp
          emptyDir: {}
        {{- with $root.Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/*
A PodDisruptionBudget selecting one component's pods (dict: root, component).
*/}}
{{- define "stream-monitor.podDisruptionBudget" -}}
{{- $pdb := .root.Values.podDisruptionBudget -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "stream-monitor.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "stream-monitor.componentLabels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $pdb.maxUnavailable) }}
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- else }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "stream-monitor.componentSelectorLabels" . | nindent 6 }}
{{- end }}
