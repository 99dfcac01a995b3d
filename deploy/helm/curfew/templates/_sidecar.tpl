{{/*
================================================================================================
curfew's named templates: how a pod gets curfew beside its app.

The chart's own Deployment uses them, and so can any chart that lists this one as a dependency
(see deploy/helm/README.md, "Adding curfew to your own chart"). Each takes
    (dict "root" $ "values" .Values.curfew)      from a parent chart
    (dict "root" $ "values" .Values)             in this chart
and renders:
  curfew.initContainers  list items: the curfew container when nativeSidecar is true, else nothing
  curfew.containers      list items: the curfew container when nativeSidecar is false, else nothing
  curfew.volumes         list items: the config ConfigMap volume (+ extraVolumes)
  curfew.podAnnotations  map entries: config checksum, Prometheus scrape annotations
  curfew.terminationGracePeriodSeconds   a number: preStopDelay + drainTimeout + slack
  curfew.config          the text of curfew.yaml (the ConfigMap this chart renders holds it)

Pattern for a pod spec:
      terminationGracePeriodSeconds: {{ include "curfew.terminationGracePeriodSeconds" $cf }}
      {{- with include "curfew.initContainers" $cf }}
      initContainers:
        {{- . | nindent 8 }}
      {{- end }}
      containers:
        - name: my-app
          ...
        {{- include "curfew.containers" $cf | nindent 8 }}
      volumes:
        {{- include "curfew.volumes" $cf | nindent 8 }}
================================================================================================
*/}}

{{/* curfew.config: curfew.yaml, from config plus the chart's admin port and drain timeout. */}}
{{- define "curfew.config" -}}
{{- $v := .values -}}
{{- $config := dict "admin" (dict "address" (printf "*:%d" (int $v.ports.admin))) -}}
{{- $_ := set $config "drain_timeout" $v.drainTimeout -}}
{{- /* Helm reads values as YAML 1.1, where an unquoted `on:` key (retry.on) is true. */ -}}
{{- $listeners := deepCopy $v.config.listeners -}}
{{- range $listeners -}}
{{- range .routes -}}
{{- if and .retry (hasKey .retry "true") -}}
{{- $_ := set .retry "on" (get .retry "true") -}}
{{- $_ := unset .retry "true" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config "listeners" $listeners -}}
{{- with $v.config.upstreams }}{{ $_ := set $config "upstreams" . }}{{ end -}}
{{- with $v.config.workers }}{{ $_ := set $config "workers" (int .) }}{{ end -}}
{{- with $v.config.busy_poll }}{{ $_ := set $config "busy_poll" . }}{{ end -}}
{{- with $v.config.data_path }}{{ $_ := set $config "data_path" . }}{{ end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
curfew.restartKeyOf: the parts of the config curfew cannot reload in place (it refuses such a
reload and keeps serving the old config): listeners, their limits, workers, busy_poll,
the admin port.
*/}}
{{- define "curfew.restartKeyOf" -}}
{{- $listeners := list -}}
{{- range .values.config.listeners -}}
{{- $listeners = append $listeners (dict "name" .name "address" .address "limits" (default (dict) .limits)) -}}
{{- end -}}
{{- toYaml (dict "admin" (int .values.ports.admin) "workers" (int (default 0 .values.config.workers)) "busy_poll" (default "0s" .values.config.busy_poll) "listeners" $listeners) -}}
{{- end -}}

{{/* curfew.checkOf: refuses values that would render a pod that cannot work. */}}
{{- define "curfew.checkOf" -}}
{{- $v := .values -}}
{{- if and $v.nativeSidecar (semverCompare "<1.29.0-0" .root.Capabilities.KubeVersion.Version) -}}
{{- fail (printf "nativeSidecar: true needs Kubernetes >= 1.29 (init containers with restartPolicy: Always); this cluster is %s. Set nativeSidecar: false for a classic sidecar." .root.Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- range $v.config.listeners -}}
{{- if eq (regexFind "[0-9]+$" .address | int) (int $v.ports.admin) -}}
{{- fail (printf "config.listeners: listener %q (%s) uses the admin port %d (ports.admin)" .name .address (int $v.ports.admin)) -}}
{{- end -}}
{{- end -}}
{{- $_ := include "curfew.terminationGracePeriodSeconds" . -}}
{{- end -}}

{{/* curfew.terminationGracePeriodSeconds: enough for the preStop delay and the whole drain. */}}
{{- define "curfew.terminationGracePeriodSeconds" -}}
{{- $v := .values -}}
{{- $needed := add (include "curfew.ceilSeconds" $v.preStopDelay) (include "curfew.ceilSeconds" $v.drainTimeout) -}}
{{- if kindIs "invalid" $v.terminationGracePeriodSeconds -}}
{{- add $needed (int (default 0 $v.extraTerminationSeconds)) -}}
{{- else if lt (int $v.terminationGracePeriodSeconds) (int $needed) -}}
{{- fail (printf "terminationGracePeriodSeconds %d is less than preStopDelay %s + drainTimeout %s (%d s): Kubernetes would kill curfew before it has drained. Raise it, or leave it null to have it computed." (int $v.terminationGracePeriodSeconds) $v.preStopDelay $v.drainTimeout (int $needed)) -}}
{{- else -}}
{{- int $v.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* curfew.container: the curfew container, as one list item. */}}
{{- define "curfew.container" -}}
{{- $v := .values -}}
- name: curfew
  image: {{ printf "%s:%s" $v.image.repository $v.image.tag | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy | default "IfNotPresent" }}
  {{- if $v.nativeSidecar }}
  # A native sidecar: started before the app containers, stopped after them.
  restartPolicy: Always
  {{- end }}
  args:
    - --config
    - /etc/curfew/curfew.yaml
    - --log-level
    - {{ $v.logLevel | default "info" }}
  ports:
    - name: curfew-admin
      containerPort: {{ int $v.ports.admin }}
      protocol: TCP
    {{- range (include "curfew.listenerPortsOf" . | fromYamlArray) }}
    - name: {{ .name }}
      containerPort: {{ int .port }}
      protocol: TCP
    {{- end }}
  {{- with $v.extraEnv }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  startupProbe:
    httpGet:
      path: /readyz
      port: {{ int $v.ports.admin }}
    {{- with $v.probes.startup }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ int $v.ports.admin }}
    {{- with $v.probes.liveness }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ int $v.ports.admin }}
    {{- with $v.probes.readiness }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if gt (include "curfew.millis" $v.preStopDelay | int64) 0 }}
  lifecycle:
    preStop:
      # Keep serving while endpoints and load balancers forget this pod; SIGTERM then drains
      # for up to drainTimeout ({{ $v.drainTimeout }}).
      exec:
        command: ["/bin/sleep", {{ include "curfew.sleepArg" $v.preStopDelay | quote }}]
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: {{ int (default 65532 $v.securityContext.runAsUser) }}
    runAsGroup: {{ int (default 65532 $v.securityContext.runAsGroup) }}
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    privileged: false
    capabilities:
      drop: [ALL]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    # The whole directory, never a subPath: the kubelet then swaps in an updated ConfigMap and
    # curfew reloads it.
    - name: curfew-config
      mountPath: /etc/curfew
      readOnly: true
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  terminationMessagePolicy: FallbackToLogsOnError
{{- end -}}

{{- define "curfew.initContainers" -}}
{{- include "curfew.checkOf" . -}}
{{- if .values.nativeSidecar -}}
{{- include "curfew.container" . -}}
{{- end -}}
{{- end -}}

{{- define "curfew.containers" -}}
{{- include "curfew.checkOf" . -}}
{{- if not .values.nativeSidecar -}}
{{- include "curfew.container" . -}}
{{- end -}}
{{- end -}}

{{- define "curfew.volumes" -}}
- name: curfew-config
  configMap:
    name: {{ include "curfew.configMapNameOf" . }}
{{- with .values.extraVolumes }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{- define "curfew.podAnnotations" -}}
{{- if eq .values.configChange "reload" -}}
# Only what curfew cannot reload in place rolls the pods; the rest is reloaded from the mount.
checksum/curfew-restart: {{ include "curfew.restartKeyOf" . | sha256sum }}
{{- else -}}
checksum/curfew-config: {{ include "curfew.config" . | sha256sum }}
{{- end }}
{{- if .values.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ int .values.ports.admin | quote }}
prometheus.io/path: /metrics
{{- end -}}
{{- end -}}
