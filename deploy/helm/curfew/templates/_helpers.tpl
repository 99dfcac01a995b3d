{{/*
Names, labels and small computations shared by the chart's templates.

Helpers named curfew.*Of and the sidecar templates in _sidecar.tpl take a dict
(dict "root" $ "values" <curfew values>), so that a parent chart can call them with its own root
context and its `.Values.curfew`. The chart's own templates pass (dict "root" $ "values" .Values).
*/}}

{{/* curfew.fullnameOf: the name of this curfew release's objects. */}}
{{- define "curfew.fullnameOf" -}}
{{- $v := .values -}}
{{- if $v.fullnameOverride -}}
{{- $v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "curfew" $v.nameOverride -}}
{{- if contains $name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
curfew.configMapNameOf: the ConfigMap holding curfew.yaml. configChange rollout: the name ends in
the first 10 hex digits of the config's sha256, so a changed config is a new ConfigMap that only
the new ReplicaSet's pods mount (running pods keep theirs and never hot-reload it); the name
changes with the config and only then. configChange reload: one fixed name, updated in place.
*/}}
{{- define "curfew.configMapNameOf" -}}
{{- if eq .values.configChange "reload" -}}
{{- printf "%s-config" (include "curfew.fullnameOf" . | trunc 56 | trimSuffix "-") -}}
{{- else -}}
{{- printf "%s-config-%s" (include "curfew.fullnameOf" . | trunc 45 | trimSuffix "-") (include "curfew.config" . | sha256sum | trunc 10) -}}
{{- end -}}
{{- end -}}

{{/*
curfew.nativeOf: "true" when curfew runs as a native sidecar. nativeSidecar true/false decides;
null (the default) means native on Kubernetes >= 1.29 (.Capabilities.KubeVersion), classic before.
*/}}
{{- define "curfew.nativeOf" -}}
{{- $native := .values.nativeSidecar -}}
{{- if kindIs "invalid" $native -}}
{{- $native = semverCompare ">=1.29.0-0" .root.Capabilities.KubeVersion.Version -}}
{{- end -}}
{{- if $native }}true{{ end -}}
{{- end -}}

{{/* curfew.sleepActionOf: "true" when the cluster has the sleep lifecycle action (>= 1.30). */}}
{{- define "curfew.sleepActionOf" -}}
{{- if semverCompare ">=1.30.0-0" .root.Capabilities.KubeVersion.Version }}true{{ end -}}
{{- end -}}

{{/*
curfew.sleepHandlerOf: a lifecycle handler that sleeps (dict "root" "values" "duration"): the sleep
action (whole seconds, rounded up) where the cluster has it, so that no image needs a sleep binary;
exec /bin/sleep on older clusters.
*/}}
{{- define "curfew.sleepHandlerOf" -}}
{{- if include "curfew.sleepActionOf" . -}}
sleep:
  seconds: {{ include "curfew.ceilSeconds" .duration }}
{{- else -}}
exec:
  command: ["/bin/sleep", {{ include "curfew.sleepArg" .duration | quote }}]
{{- end -}}
{{- end -}}

{{/*
curfew.appSelectorLabels: the labels of the app's pods (standalone chart). They name the app
(app.name), not curfew: the pods are the app's, curfew only runs beside it.
*/}}
{{- define "curfew.appSelectorLabels" -}}
app.kubernetes.io/name: {{ .Values.app.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "curfew.appLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "curfew.appSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.app.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* curfew.fullname: curfew.fullnameOf for this chart's own values. */}}
{{- define "curfew.fullname" -}}
{{- include "curfew.fullnameOf" (dict "root" . "values" .Values) -}}
{{- end -}}

{{- define "curfew.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "curfew.selectorLabels" -}}
app.kubernetes.io/name: {{ include "curfew.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "curfew.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "curfew.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: grpc-deadline-sidecar
{{- end -}}

{{/*
curfew.millis: a curfew duration ("250ms", "1.5s", "2m") as a whole number of milliseconds.
The schema has already checked the syntax; this fails loudly on anything else anyway.
*/}}
{{- define "curfew.millis" -}}
{{- $text := toString . -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $text -}}
{{- $factors := dict "ms" 1 "s" 1000 "m" 60000 -}}
{{- $unit := trimPrefix $number $text -}}
{{- if or (not $number) (not (hasKey $factors $unit)) -}}
{{- fail (printf "bad duration %q (expected a number followed by ms, s or m)" $text) -}}
{{- end -}}
{{- round (mulf (float64 $number) (get $factors $unit)) 0 | int64 -}}
{{- end -}}

{{/* curfew.ceilSeconds: a curfew duration rounded up to whole seconds. */}}
{{- define "curfew.ceilSeconds" -}}
{{- div (add (include "curfew.millis" . | int64) 999) 1000 -}}
{{- end -}}

{{/* curfew.sleepArg: a curfew duration as an argument of sleep(1): "5", "0.25". */}}
{{- define "curfew.sleepArg" -}}
{{- $ms := include "curfew.millis" . | int64 -}}
{{- if eq (mod $ms 1000) 0 -}}
{{- div $ms 1000 -}}
{{- else -}}
{{- regexReplaceAll "0+$" (printf "%d.%03d" (div $ms 1000) (mod $ms 1000)) "" -}}
{{- end -}}
{{- end -}}

{{/*
curfew.listenerPortsOf: the listeners reachable from outside the pod (not bound to loopback), as
a YAML list of {name, port}; they become container ports and Service ports.
*/}}
{{- define "curfew.listenerPortsOf" -}}
{{- $ports := list -}}
{{- range .values.config.listeners -}}
{{- $port := regexFind "[0-9]+$" .address -}}
{{- $host := trimSuffix (printf ":%s" $port) .address -}}
{{- if not (or (hasPrefix "127." $host) (eq $host "localhost") (eq $host "[::1]")) -}}
{{- $ports = append $ports (dict "name" .name "port" (int $port)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $ports -}}
{{- end -}}
