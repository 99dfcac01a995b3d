{{/*
================================================================================================
curfew's named templates: how a pod gets curfew beside its app.

The chart's own Deployment uses them, and so can any chart that lists this one as a dependency
(see deploy/helm/README.md, "Adding curfew to your own chart"). Each takes
    (dict "root" $ "values" .Values.curfew)      from a parent chart
    (dict "root" $ "values" .Values)             in this chart
and renders:
  curfew.initContainers  list items: the curfew container for a native sidecar, else nothing
  curfew.containers      list items: the curfew container for a classic sidecar, else nothing;
                         put it before the app's containers (the kubelet starts them in order)
  curfew.appLifecycle    map entry: the app container's lifecycle, with a default preStop that
                         matches curfew's drain (takes "lifecycle": the app's own hooks)
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
        {{- include "curfew.containers" $cf | nindent 8 }}
        - name: my-app
          ...
          {{- include "curfew.appLifecycle" $cf | nindent 10 }}
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
{{- include "curfew.drainCoversRoutesOf" . -}}
{{- end -}}

{{/*
curfew.drainCoversRoutesOf: refuses a drainTimeout shorter than the longest deadline curfew
itself gives a call: per route, its timeout (or the listener's default_timeout, 1s if unset) or
its max_timeout, whichever is longer. A call in flight at SIGTERM could otherwise be cancelled
before its own deadline. A route without max_timeout keeps whatever deadline the caller sent,
which no drain can be sized for: set max_timeout to bound it. drainCoversRoutes: false accepts a
shorter drain (e.g. for long streaming routes that callers re-open anyway).
*/}}
{{- define "curfew.drainCoversRoutesOf" -}}
{{- $v := .values -}}
{{- if not (eq $v.drainCoversRoutes false) -}}
{{- $drain := include "curfew.millis" $v.drainTimeout | int64 -}}
{{- range $l := $v.config.listeners -}}
{{- $default := $l.default_timeout | default "1s" -}}
{{- range $r := $l.routes -}}
{{- $longest := default $default $r.timeout -}}
{{- $what := ternary "its timeout" "the listener's default_timeout" (not (empty $r.timeout)) -}}
{{- if and $r.max_timeout (gt (include "curfew.millis" $r.max_timeout | int64) (include "curfew.millis" $longest | int64)) -}}
{{- $longest = $r.max_timeout -}}
{{- $what = "its max_timeout" -}}
{{- end -}}
{{- if lt $drain (include "curfew.millis" $longest | int64) -}}
{{- fail (printf "drainTimeout %s is shorter than route %q of listener %q, whose calls may last %s (%s): calls in flight at SIGTERM would be cancelled before their deadline. Raise drainTimeout to at least %s, or set drainCoversRoutes: false to accept that." $v.drainTimeout $r.name $l.name $longest $what $longest) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
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
  {{- $native := include "curfew.nativeOf" . }}
  {{- if $native }}
  # A native sidecar: started before the app containers (once the startup probe passes),
  # stopped after them.
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
  env:
    # curfew's CPU request in millicores: with workers: 0 curfew runs one loop thread per CPU
    # the container may use, and a request without a limit leaves cpu.max at "max".
    - name: CURFEW_CPU_REQUEST_MILLICORES
      valueFrom:
        resourceFieldRef:
          containerName: curfew
          resource: requests.cpu
          divisor: 1m
    {{- with $v.extraEnv }}
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
  {{- $wait := and (not $native) (not (eq $v.holdAppUntilReady false)) }}
  {{- $preStop := gt (include "curfew.millis" $v.preStopDelay | int64) 0 }}
  {{- if or $wait $preStop }}
  lifecycle:
    {{- if $wait }}
    postStart:
      # Classic sidecar: the kubelet starts the next container (the app) only once this hook
      # returns, so it waits for /readyz (curfew has no wait command of its own; bash's
      # /dev/tcp needs no curl in the image).
      exec:
        command:
          - /bin/bash
          - -c
          - |
            {{- include "curfew.readyWaitScriptOf" . | nindent 12 }}
    {{- end }}
    {{- if $preStop }}
    preStop:
      # Keep serving while endpoints and load balancers forget this pod; SIGTERM then drains
      # for up to drainTimeout ({{ $v.drainTimeout }}).
      {{- include "curfew.sleepHandlerOf" (dict "root" .root "values" $v "duration" $v.preStopDelay) | nindent 6 }}
    {{- end }}
  {{- end }}
  resources:
    {{- include "curfew.resourcesOf" . | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    {{- with $v.securityContext.runAsUser }}
    runAsUser: {{ int . }}
    {{- end }}
    {{- with $v.securityContext.runAsGroup }}
    runAsGroup: {{ int . }}
    {{- end }}
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    privileged: false
    capabilities:
      drop: [ALL]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    # The whole directory, never a subPath: with configChange reload the kubelet then swaps in
    # an updated ConfigMap and curfew reloads it.
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
{{- if include "curfew.nativeOf" . -}}
{{- include "curfew.container" . -}}
{{- end -}}
{{- end -}}

{{- define "curfew.containers" -}}
{{- include "curfew.checkOf" . -}}
{{- if not (include "curfew.nativeOf" .) -}}
{{- include "curfew.container" . -}}
{{- end -}}
{{- end -}}

{{/*
curfew.readyWaitScriptOf: the classic sidecar's postStart wait, a bash script: GET /readyz on the
admin port until it answers 200, for at most the startup probe's budget (initialDelaySeconds +
periodSeconds x failureThreshold); then it fails, and the kubelet restarts curfew.
*/}}
{{- define "curfew.readyWaitScriptOf" -}}
{{- $p := default (dict) .values.probes.startup -}}
{{- $budget := add (int (default 0 $p.initialDelaySeconds)) (mul (int (default 10 $p.periodSeconds)) (int (default 3 $p.failureThreshold))) -}}
t={{ $budget }}
while ((SECONDS < t)); do
  { printf 'GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
    read -r -t 2 _ code _ <&3; } 2>/dev/null 3<>/dev/tcp/127.0.0.1/{{ int .values.ports.admin }}
  [[ $code == 200 ]] && exit 0
  sleep 0.2
done
echo "curfew: /readyz did not answer 200 within ${t}s" >&2
exit 1
{{- end -}}

{{/*
curfew.resourcesOf: curfew's resources: the values' `resources` when set, else sized to the
worker count W (config.workers, or 1 for workers: 0, which follows the CPU request): requests
W x 100m CPU and 32Mi + W x 32Mi memory, a memory limit of 4x the request, no CPU limit (CFS
throttling would add latency to every call).
*/}}
{{- define "curfew.resourcesOf" -}}
{{- if .values.resources -}}
{{- toYaml .values.resources -}}
{{- else -}}
{{- $w := max 1 (int (default 0 .values.config.workers)) -}}
{{- $mem := add 32 (mul 32 $w) -}}
requests:
  cpu: {{ printf "%dm" (mul 100 $w) }}
  memory: {{ printf "%dMi" $mem }}
limits:
  memory: {{ printf "%dMi" (mul 4 $mem) }}
{{- end -}}
{{- end -}}

{{/*
curfew.appLifecycle: the app container's `lifecycle:` (dict "root" "values" "lifecycle"): the app's
own hooks (lifecycle), plus, unless it has a preStop or appPreStop is false, a default preStop
that matches curfew's drain. Classic sidecar: preStopDelay + drainTimeout, so the app gets SIGTERM
only once curfew has stopped forwarding calls to it (curfew's preStop, then its drain). Native
sidecar: preStopDelay, so endpoints forget the pod before the app stops; curfew stops after it.
*/}}
{{- define "curfew.appLifecycle" -}}
{{- $v := .values -}}
{{- $own := deepCopy (default (dict) .lifecycle) -}}
{{- $ms := include "curfew.millis" $v.preStopDelay | int64 -}}
{{- if not (include "curfew.nativeOf" .) -}}
{{- $ms = add $ms (include "curfew.millis" $v.drainTimeout | int64) -}}
{{- end -}}
{{- if and (not (hasKey $own "preStop")) (not (eq $v.appPreStop false)) (gt $ms 0) -}}
{{- $_ := set $own "preStop" (include "curfew.sleepHandlerOf" (dict "root" .root "values" $v "duration" (printf "%dms" $ms)) | fromYaml) -}}
{{- end -}}
{{- with $own -}}
lifecycle:
  {{- toYaml . | nindent 2 }}
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
