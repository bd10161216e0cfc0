{{/*
Names are fixed (not derived from the release name): the operator is cluster-wide, its
ClusterRole, PriorityClasses and peering object are cluster-scoped, so one release per cluster.
Labels are exactly those of deploy/ (kustomize), so both install paths produce the same objects.
*/}}
{{- define "mto.name" -}}modeltemplate-operator{{- end }}

{{- define "mto.selectorLabels" -}}
app.kubernetes.io/name: modeltemplate-operator
app.kubernetes.io/component: operator
{{- end }}

{{- define "mto.labels" -}}
{{ include "mto.selectorLabels" . }}
app.kubernetes.io/part-of: modeltemplate-operator
{{- end }}

{{- define "mto.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The operator's config.yaml (keys of operator/modeltemplate_operator/config.py). */}}
{{- define "mto.config" -}}
{{- $config := dict
  "gpuPreset" .Values.config.gpuPreset
  "migStrategy" .Values.config.migStrategy
  "gpuClasses" .Values.config.gpuClasses
  "priorityClasses" (dict "high" .Values.priorityClasses.high.name "default" .Values.priorityClasses.default.name)
  "keda" (dict "prometheusUrl" .Values.keda.prometheusUrl)
  "clusterDomain" .Values.config.clusterDomain
  "forwarderImage" (.Values.forwarder.image | default (include "mto.image" .))
-}}
{{ toYaml $config }}
{{- end }}

{{/* Name of the config ConfigMap: a content hash, so a change rolls the Deployment (as deploy/). */}}
{{- define "mto.configMapName" -}}
modeltemplate-operator-config-{{ include "mto.config" . | sha256sum | trunc 10 }}
{{- end }}

{{/*
A file under files/ (generated from deploy/ by `make crds`), with its namespace set when given:
  include "mto.file" (list $ "files/x.yaml" "namespace-or-empty")
*/}}
{{- define "mto.file" -}}
{{- $root := index . 0 -}}
{{- $doc := $root.Files.Get (index . 1) | fromYaml -}}
{{- if index . 2 }}
{{- $_ := set $doc.metadata "namespace" (index . 2) -}}
{{- end }}
{{ toYaml $doc }}
{{- end }}
