{{/*
Names and labels (Kubernetes names are at most 63 characters).
*/}}
{{- define "promcast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "promcast.fullname" -}}
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

{{- define "promcast.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "promcast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "promcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "promcast.labels" -}}
helm.sh/chart: {{ include "promcast.chart" . }}
{{ include "promcast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "promcast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "promcast.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "promcast.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The token is needed only to call the Kubernetes API (the scaler): mounted
when RBAC is on, unless serviceAccount.automountToken says otherwise.
*/}}
{{- define "promcast.automountToken" -}}
{{- if kindIs "bool" .Values.serviceAccount.automountToken }}
{{- .Values.serviceAccount.automountToken }}
{{- else }}
{{- .Values.rbac.create }}
{{- end }}
{{- end }}

{{/*
The data directory: where the data volume is mounted and promcast keeps its
state. It must be absolute, since promcast resolves a relative storage.path
against its working directory, which is on the read-only root file system.
*/}}
{{- define "promcast.storagePath" -}}
{{- $storage := default dict .Values.config.storage }}
{{- $path := required "config.storage.path must be set: the data volume is mounted there" $storage.path | toString }}
{{- if not (hasPrefix "/" $path) }}
{{- fail (printf "config.storage.path must be an absolute path, got %q" $path) }}
{{- end }}
{{- trimSuffix "/" $path | default "/" }}
{{- end }}

{{/*
Seconds in a Prometheus duration ("30s", "1m30s", "500ms", "0"); the format
promcast's configuration uses.
*/}}
{{- define "promcast.durationSeconds" -}}
{{- $units := dict "y" 31536000.0 "w" 604800.0 "d" 86400.0 "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(ms|[ywdhms])" (toString .) -1 }}
{{- $num := regexFind "^[0-9]+" . }}
{{- $total = addf $total (mulf (float64 $num) (get $units (trimPrefix $num .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
promcast's configuration file: .Values.config, plus remote_write and
remote_read towards .Values.prometheus.url when config does not set them.
Known sections come in the order of docs/configuration.md; anything else
follows, so that promcast (not the chart) reports unknown keys.
*/}}
{{- define "promcast.config" -}}
{{- $cfg := deepCopy (default dict .Values.config) }}
{{- $url := trimSuffix "/" (default "" .Values.prometheus.url) }}
{{- if and $url (not (hasKey $cfg "remote_write")) }}
{{- $_ := set $cfg "remote_write" (list (dict "url" (printf "%s/api/v1/write" $url))) }}
{{- end }}
{{- if and $url (not (hasKey $cfg "remote_read")) }}
{{- $_ := set $cfg "remote_read" (dict "url" (printf "%s/api/v1/read" $url) "lookback" .Values.prometheus.lookback) }}
{{- end }}
{{- $order := list "global" "storage" "limits" "output" "rules" "remote_write" "remote_read" "alerting" "alert_rules" "kubernetes" "scalers" }}
{{- range $order }}
{{- if hasKey $cfg . }}
{{ toYaml (dict . (get $cfg .)) }}
{{- end }}
{{- end }}
{{- range $k, $v := $cfg }}
{{- if not (has $k $order) }}
{{ toYaml (dict $k $v) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The pod must be given longer than promcast's own shutdown deadline, or the
kubelet kills it before the final snapshot.
*/}}
{{- define "promcast.checkGracePeriod" -}}
{{- $storage := default dict .Values.config.storage }}
{{- $timeout := include "promcast.durationSeconds" (default "30s" $storage.shutdown_timeout) | float64 }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) $timeout }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than config.storage.shutdown_timeout (%v = %vs): promcast flushes and snapshots on SIGTERM" .Values.terminationGracePeriodSeconds $storage.shutdown_timeout $timeout) }}
{{- end }}
{{- end }}
