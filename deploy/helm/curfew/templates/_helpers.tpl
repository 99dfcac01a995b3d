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

{{/* curfew.configMapNameOf: the ConfigMap holding curfew.yaml. */}}
{{- define "curfew.configMapNameOf" -}}
{{- printf "%s-config" (include "curfew.fullnameOf" . | trunc 56 | trimSuffix "-") -}}
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
