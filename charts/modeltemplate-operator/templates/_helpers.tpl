{{/*
Names. With the release name "modeltemplate-operator" (or fullnameOverride set to it) every
object has the name deploy/ gives it, so both install paths produce the same objects. Any other
release name prefixes the names, the cluster-scoped ones included (ClusterRoles, their
bindings, PriorityClasses, users' roles), so two releases, or a release beside deploy/, do not
claim each other's objects.
*/}}
{{- define "mto.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mto.fullname" -}}
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

{{/* Prefix of the other names: the full name without "-operator" ("modeltemplate" by default). */}}
{{- define "mto.prefix" -}}
{{- include "mto.fullname" . | trimSuffix "-operator" | trunc 48 | trimSuffix "-" }}
{{- end }}

{{- define "mto.gatewayName" -}}{{ include "mto.prefix" . }}-gateway{{- end }}

{{- define "mto.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mto.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: the existing ServiceAccount the operator runs as (serviceAccount.create is false)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mto.priorityClassHigh" -}}
{{- .Values.priorityClasses.high.name | default (printf "%s-high-priority" (include "mto.prefix" .)) }}
{{- end }}

{{- define "mto.priorityClassDefault" -}}
{{- .Values.priorityClasses.default.name | default (printf "%s-default-priority" (include "mto.prefix" .)) }}
{{- end }}

{{/*
Selector labels: those of deploy/ and of earlier chart versions (a Deployment's selector cannot
change, so upgrades keep them).
*/}}
{{- define "mto.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mto.name" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "mto.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "mto.gatewayName" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* What Helm adds to deploy/'s labels on every object of the release. */}}
{{- define "mto.helmLabels" -}}
app.kubernetes.io/part-of: modeltemplate-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mto.labels" -}}
{{ include "mto.selectorLabels" . }}
{{ include "mto.helmLabels" . }}
{{- end }}

{{- define "mto.gatewayLabels" -}}
{{ include "mto.gatewaySelectorLabels" . }}
{{ include "mto.helmLabels" . }}
{{- end }}

{{- define "mto.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
topologySpreadConstraints of a Deployment's pods: each constraint without a labelSelector
selects the pods of that Deployment.
  include "mto.spread" (list $constraints $selectorLabelsYaml)
*/}}
{{- define "mto.spread" -}}
{{- $selector := index . 1 | fromYaml }}
{{- $out := list }}
{{- range index . 0 }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
{{- $out = append $out $c }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* The operator's config.yaml (keys of operator/modeltemplate_operator/plan/config.py). */}}
{{- define "mto.config" -}}
{{- $config := dict
  "gpuPreset" .Values.config.gpuPreset
  "migStrategy" .Values.config.migStrategy
  "gpuClasses" .Values.config.gpuClasses
  "priorityClasses" (dict "high" (include "mto.priorityClassHigh" .) "default" (include "mto.priorityClassDefault" .))
  "keda" (dict "prometheusUrl" .Values.keda.prometheusUrl)
  "clusterDomain" .Values.config.clusterDomain
  "forwarderImage" (.Values.forwarder.image | default (include "mto.image" .))
-}}
{{- with .Values.broker }}
{{- if .url }}
{{- $broker := dict "url" .url }}
{{- with .passwordSecret }}
{{- if .name }}
{{- $_ := set $broker "passwordSecret" (dict "name" .name "key" (.key | default "password")) }}
{{- end }}
{{- end }}
{{- with .resultTtlSeconds }}{{ $_ := set $broker "resultTtlSeconds" . }}{{ end }}
{{- with .visibilityTimeoutSeconds }}{{ $_ := set $broker "visibilityTimeoutSeconds" . }}{{ end }}
{{- $_ := set $config "broker" $broker }}
{{- end }}
{{- end }}
{{- $fineTuning := dict }}
{{- with .Values.fineTuning }}
{{- if not (kindIs "invalid" .activeDeadlineSeconds) }}{{ $_ := set $fineTuning "activeDeadlineSeconds" .activeDeadlineSeconds }}{{ end }}
{{- if not (kindIs "invalid" .backoffLimit) }}{{ $_ := set $fineTuning "backoffLimit" .backoffLimit }}{{ end }}
{{- with .outputPrefix }}{{ $_ := set $fineTuning "outputPrefix" . }}{{ end }}
{{- end }}
{{- if $fineTuning }}
{{- $_ := set $config "fineTuning" $fineTuning }}
{{- end }}
{{- with .Values.peering }}
{{- if not (kindIs "invalid" .lifetimeSeconds) }}
{{- $_ := set $config "peering" (dict "lifetimeSeconds" .lifetimeSeconds) }}
{{- end }}
{{- end }}
{{ toYaml $config }}
{{- end }}

{{/* Name of the config ConfigMap: a content hash, so a change rolls the Deployment (as deploy/). */}}
{{- define "mto.configMapName" -}}
{{ include "mto.fullname" . }}-config-{{ include "mto.config" . | sha256sum | trunc 10 }}
{{- end }}

{{/*
A file under files/ (generated from deploy/ by `make crds`) as a dict, with the release's
labels merged in:  include "mto.doc" (list $ "files/x.yaml") | fromYaml
*/}}
{{- define "mto.doc" -}}
{{- $root := index . 0 -}}
{{- $doc := $root.Files.Get (index . 1) | fromYaml -}}
{{- $labels := merge (include "mto.helmLabels" $root | fromYaml) ($doc.metadata.labels | default dict) -}}
{{- $_ := set $doc.metadata "labels" $labels -}}
{{ toYaml $doc }}
{{- end }}
