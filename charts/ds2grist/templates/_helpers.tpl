{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "ds2grist.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ds2grist.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>", within 63 characters. Call with (dict "root" $ "component" "worker"). */}}
{{- define "ds2grist.componentName" -}}
{{- printf "%s-%s" (include "ds2grist.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component -}}
{{- end -}}

{{- define "ds2grist.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ds2grist.labels" -}}
helm.sh/chart: {{ include "ds2grist.chart" . }}
{{ include "ds2grist.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ds2grist
{{- end -}}

{{- define "ds2grist.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ds2grist.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component. Call with (dict "root" $ "component" "worker"). */}}
{{- define "ds2grist.componentLabels" -}}
{{ include "ds2grist.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ds2grist.componentSelectorLabels" -}}
{{ include "ds2grist.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ds2grist.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ds2grist.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ds2grist.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{/* The Secret that references without secretName read from. */}}
{{- define "ds2grist.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "ds2grist.fullname" .) -}}
{{- end -}}

{{/* Secrets ---------------------------------------------------------------------------------

"ds2grist.secretRef" resolves one secret reference of the values into JSON:
  {"config": {"env": NAME} | {"file": PATH},       what config.json holds
   "managed": true|false,                          false for {env}/{file} pass-through
   "mode": "env"|"file", "secretName", "key",
   "envName": "D2G_SECRET_...", "path": "<dir>/<name>" (relative to secrets.mountPath)}
Call with (dict "root" $ "ref" <reference> "where" <values path> "env" <env suffix> "path" <file path>).
*/}}
{{- define "ds2grist.secretRef" -}}
{{- $ref := .ref -}}
{{- $root := .root -}}
{{- if not (kindIs "map" $ref) -}}
{{- fail (printf "%s must be a reference to a Kubernetes Secret ({key: ..., secretName: ...}), never the secret itself" .where) -}}
{{- end -}}
{{- $out := dict "managed" false -}}
{{- if hasKey $ref "env" -}}
{{- $_ := set $out "config" (dict "env" (required (printf "%s.env must name an environment variable" .where) $ref.env)) -}}
{{- else if hasKey $ref "file" -}}
{{- $_ := set $out "config" (dict "file" (required (printf "%s.file must be a path" .where) $ref.file)) -}}
{{- else -}}
{{- $key := required (printf "%s.key: the key of the secret in its Kubernetes Secret is required" .where) $ref.key -}}
{{- $mode := $ref.mode | default $root.Values.secrets.mode -}}
{{- $envName := printf "D2G_SECRET_%s" (regexReplaceAll "[^A-Z0-9]+" (upper .env) "_") -}}
{{- $path := .path -}}
{{- $_ := set $out "managed" true -}}
{{- $_ := set $out "mode" $mode -}}
{{- $_ := set $out "secretName" ($ref.secretName | default (include "ds2grist.secretName" $root)) -}}
{{- $_ := set $out "key" $key -}}
{{- $_ := set $out "envName" $envName -}}
{{- $_ := set $out "path" $path -}}
{{- if eq $mode "env" -}}
{{- $_ := set $out "config" (dict "env" $envName) -}}
{{- else if eq $mode "file" -}}
{{- $_ := set $out "config" (dict "file" (printf "%s/%s" (trimSuffix "/" $root.Values.secrets.mountPath) $path)) -}}
{{- else -}}
{{- fail (printf "%s.mode must be env or file" .where) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* A name made safe as a file name. */}}
{{- define "ds2grist.fileName" -}}
{{- regexReplaceAll "[^A-Za-z0-9_-]" (toString .) "_" -}}
{{- end -}}

{{/* Every secret reference of config, resolved: {"refs": [ ... ]} (JSON), in a fixed order.
Fails when two references would share an environment variable or a file. */}}
{{- define "ds2grist.secretRefs" -}}
{{- $root := . -}}
{{- $c := .Values.config -}}
{{- $refs := list -}}
{{- range $prop, $ref := ($c.kafka.secret_properties | default dict) -}}
{{- $refs = append $refs (include "ds2grist.secretRef" (dict "root" $root "ref" $ref "where" (printf "config.kafka.secret_properties[%q]" $prop) "env" (printf "KAFKA_%s" $prop) "path" (printf "kafka/%s" (include "ds2grist.fileName" $prop))) | fromJson) -}}
{{- end -}}
{{- if $c.redis.password -}}
{{- $refs = append $refs (include "ds2grist.secretRef" (dict "root" $root "ref" $c.redis.password "where" "config.redis.password" "env" "REDIS_PASSWORD" "path" "redis/password") | fromJson) -}}
{{- end -}}
{{- range $name, $tok := ($c.ds.tokens | default dict) -}}
{{- $refs = append $refs (include "ds2grist.secretRef" (dict "root" $root "ref" $tok.secret "where" (printf "config.ds.tokens.%s.secret" $name) "env" (printf "DS_TOKEN_%s" $name) "path" (printf "ds/%s" (include "ds2grist.fileName" $name))) | fromJson) -}}
{{- end -}}
{{- range $name, $srv := ($c.grist.servers | default dict) -}}
{{- $refs = append $refs (include "ds2grist.secretRef" (dict "root" $root "ref" $srv.api_key "where" (printf "config.grist.servers.%s.api_key" $name) "env" (printf "GRIST_API_KEY_%s" $name) "path" (printf "grist/%s" (include "ds2grist.fileName" $name))) | fromJson) -}}
{{- end -}}
{{- if $root.Values.onboarding.enabled -}}
{{- $refs = append $refs (include "ds2grist.secretRef" (dict "root" $root "ref" $root.Values.onboarding.encryptionKey "where" "onboarding.encryptionKey" "env" "REGISTRY_KEY" "path" "registry/key") | fromJson) -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $r := $refs -}}
{{- if $r.managed -}}
{{- $id := ternary $r.envName $r.path (eq $r.mode "env") -}}
{{- if hasKey $seen $id -}}
{{- fail (printf "two secret references map to %s: rename a token, server or property" $id) -}}
{{- end -}}
{{- $_ := set $seen $id true -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "refs" $refs) -}}
{{- end -}}

{{/* Configuration ---------------------------------------------------------------------------

config.json, built from .Values.config (docs/configuration.md). Only keys that the file
accepts are written; secrets become {"env": ...} or {"file": ...} references. */}}
{{- define "ds2grist.config" -}}
{{- $root := . -}}
{{- $c := .Values.config -}}
{{- $cfg := dict -}}

{{- /* kafka */ -}}
{{- $props := dict -}}
{{- range $k, $v := ($c.kafka.properties | default dict) -}}
{{- $_ := set $props $k (toString $v) -}}
{{- end -}}
{{- $_ := required "config.kafka.properties[\"bootstrap.servers\"] is required" (index $props "bootstrap.servers" | default "") -}}
{{- $kafka := dict "properties" $props -}}
{{- if $c.kafka.secret_properties -}}
{{- $sp := dict -}}
{{- range $prop, $ref := $c.kafka.secret_properties -}}
{{- $r := include "ds2grist.secretRef" (dict "root" $root "ref" $ref "where" (printf "config.kafka.secret_properties[%q]" $prop) "env" (printf "KAFKA_%s" $prop) "path" (printf "kafka/%s" (include "ds2grist.fileName" $prop))) | fromJson -}}
{{- $_ := set $sp $prop $r.config -}}
{{- end -}}
{{- $_ := set $kafka "secret_properties" $sp -}}
{{- end -}}
{{- range $k := list "topic" "dlq_topic" "retry_topic" "consumer_group" -}}
{{- if index $c.kafka $k -}}
{{- $_ := set $kafka $k (index $c.kafka $k) -}}
{{- end -}}
{{- end -}}
{{- if and $c.kafka.topic (eq (toString $c.kafka.topic) (toString ($c.kafka.dlq_topic | default ""))) -}}
{{- fail "config.kafka.dlq_topic must differ from config.kafka.topic" -}}
{{- end -}}
{{- $_ := set $cfg "kafka" $kafka -}}

{{- /* redis */ -}}
{{- $redis := dict "url" (required "config.redis.url is required" $c.redis.url) -}}
{{- if $c.redis.namespace -}}{{- $_ := set $redis "namespace" $c.redis.namespace -}}{{- end -}}
{{- if $c.redis.username -}}{{- $_ := set $redis "username" $c.redis.username -}}{{- end -}}
{{- if $c.redis.password -}}
{{- $r := include "ds2grist.secretRef" (dict "root" $root "ref" $c.redis.password "where" "config.redis.password" "env" "REDIS_PASSWORD" "path" "redis/password") | fromJson -}}
{{- $_ := set $redis "password" $r.config -}}
{{- end -}}
{{- $_ := set $cfg "redis" $redis -}}

{{- /* ds */ -}}
{{- $ds := dict -}}
{{- if $c.ds.endpoint -}}{{- $_ := set $ds "endpoint" $c.ds.endpoint -}}{{- end -}}
{{- if $c.ds.timeout_s -}}{{- $_ := set $ds "timeout_s" $c.ds.timeout_s -}}{{- end -}}
{{- $tokens := dict -}}
{{- range $name, $tok := ($c.ds.tokens | default dict) -}}
{{- $r := include "ds2grist.secretRef" (dict "root" $root "ref" $tok.secret "where" (printf "config.ds.tokens.%s.secret" $name) "env" (printf "DS_TOKEN_%s" $name) "path" (printf "ds/%s" (include "ds2grist.fileName" $name))) | fromJson -}}
{{- $t := dict "secret" $r.config -}}
{{- if $tok.requests_per_minute -}}{{- $_ := set $t "requests_per_minute" $tok.requests_per_minute -}}{{- end -}}
{{- $_ := set $tokens $name $t -}}
{{- end -}}
{{- $_ := set $ds "tokens" $tokens -}}
{{- $_ := set $cfg "ds" $ds -}}

{{- /* grist */ -}}
{{- $grist := dict -}}
{{- if $c.grist.timeout_s -}}{{- $_ := set $grist "timeout_s" $c.grist.timeout_s -}}{{- end -}}
{{- $servers := dict -}}
{{- range $name, $srv := ($c.grist.servers | default dict) -}}
{{- $r := include "ds2grist.secretRef" (dict "root" $root "ref" $srv.api_key "where" (printf "config.grist.servers.%s.api_key" $name) "env" (printf "GRIST_API_KEY_%s" $name) "path" (printf "grist/%s" (include "ds2grist.fileName" $name))) | fromJson -}}
{{- $s := dict "url" (required (printf "config.grist.servers.%s.url is required" $name) $srv.url) "api_key" $r.config -}}
{{- if $srv.permits_per_document -}}{{- $_ := set $s "permits_per_document" $srv.permits_per_document -}}{{- end -}}
{{- if $srv.requests_per_second -}}{{- $_ := set $s "requests_per_second" $srv.requests_per_second -}}{{- end -}}
{{- if $srv.documents -}}{{- $_ := set $s "documents" $srv.documents -}}{{- end -}}
{{- $_ := set $servers $name $s -}}
{{- end -}}
{{- if not $servers -}}
{{- fail "config.grist.servers must name at least one Grist server" -}}
{{- end -}}
{{- $_ := set $grist "servers" $servers -}}
{{- $_ := set $cfg "grist" $grist -}}

{{- /* the loader's cross-field rule: a producer lease outlives a DS request */ -}}
{{- $lease := (($c.producer | default dict).lease_s | default 120) -}}
{{- $dsTimeout := $c.ds.timeout_s | default 60 -}}
{{- if le (int $lease) (int $dsTimeout) -}}
{{- fail (printf "config.producer.lease_s (%v) must exceed config.ds.timeout_s (%v), or a slow request could outlive its lease" $lease $dsTimeout) -}}
{{- end -}}

{{- /* the rest, passed through */ -}}
{{- if $c.defaults -}}{{- $_ := set $cfg "defaults" $c.defaults -}}{{- end -}}
{{- $_ := set $cfg "procedures" ($c.procedures | default list) -}}
{{- if $c.producer -}}{{- $_ := set $cfg "producer" $c.producer -}}{{- end -}}
{{- if $c.worker -}}{{- $_ := set $cfg "worker" $c.worker -}}{{- end -}}
{{- if $c.log_level -}}{{- $_ := set $cfg "log_level" $c.log_level -}}{{- end -}}
{{- $_ := set $cfg "http" (dict "port" (required "config.http.port is required (the probes and metrics use it)" $c.http.port)) -}}
{{- /* the registry and the onboarding service (onboarding.*) */ -}}
{{- $ob := .Values.onboarding -}}
{{- if $ob.enabled -}}
{{- if eq (int $ob.port) (int $c.http.port) -}}
{{- fail (printf "onboarding.port (%v) must differ from config.http.port" $ob.port) -}}
{{- end -}}
{{- $r := include "ds2grist.secretRef" (dict "root" $root "ref" $ob.encryptionKey "where" "onboarding.encryptionKey" "env" "REGISTRY_KEY" "path" "registry/key") | fromJson -}}
{{- $_ := set $cfg "registry" (dict "encryption_key" $r.config "topic" $ob.registryTopic) -}}
{{- $o := deepCopy ($ob.settings | default dict) -}}
{{- if hasKey $o "listen" -}}
{{- fail "onboarding.settings.listen: set onboarding.port instead" -}}
{{- end -}}
{{- $_ := set $o "listen" (printf "0.0.0.0:%v" $ob.port) -}}
{{- $_ := set $cfg "onboarding" $o -}}
{{- end -}}
{{- toPrettyJson $cfg -}}
{{- end -}}

{{/* Pods ---------------------------------------------------------------------------------- */}}

{{/* The shutdown grace of a component (config.<component>.shutdown_grace_s, default 25 s), checked
against the pod's terminationGracePeriodSeconds. Call with (dict "root" $ "component" "producer"). */}}
{{- define "ds2grist.terminationGrace" -}}
{{- $v := index .root.Values .component -}}
{{- $cfg := index .root.Values.config .component | default dict -}}
{{- $grace := $cfg.shutdown_grace_s | default 25 -}}
{{- if le (int $v.terminationGracePeriodSeconds) (int $grace) -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%v) must exceed config.%s.shutdown_grace_s (%v), or Kubernetes kills the %s before it has shut down cleanly" .component $v.terminationGracePeriodSeconds .component $grace .component) -}}
{{- end -}}
{{- int $v.terminationGracePeriodSeconds -}}
{{- end -}}

{{/* The pod template of a component. Call with (dict "root" $ "component" "producer"). */}}
{{- define "ds2grist.podTemplate" -}}
{{- $root := .root -}}
{{- $v := index $root.Values .component -}}
{{- $refs := (include "ds2grist.secretRefs" $root | fromJson).refs -}}
{{- $fileRefs := list -}}
{{- range $r := $refs -}}
{{- if and $r.managed (eq $r.mode "file") -}}{{- $fileRefs = append $fileRefs $r -}}{{- end -}}
{{- end -}}
metadata:
  labels:
    {{- include "ds2grist.componentLabels" . | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "ds2grist.config" $root | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "ds2grist.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  terminationGracePeriodSeconds: {{ include "ds2grist.terminationGrace" . }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ .component }}
      image: {{ include "ds2grist.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command:
        - ds2grist-{{ .component }}
        - --config
        - /etc/ds2grist/config.json
      env:
        # The operator CLI (kubectl exec ... ds2grist ...) finds the configuration through it.
        - name: DS2GRIST_CONFIG
          value: /etc/ds2grist/config.json
        {{- range $r := $refs }}
        {{- if and $r.managed (eq $r.mode "env") }}
        - name: {{ $r.envName }}
          valueFrom:
            secretKeyRef:
              name: {{ $r.secretName | quote }}
              key: {{ $r.key | quote }}
        {{- end }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ $root.Values.config.http.port }}
          protocol: TCP
        {{- if and $root.Values.onboarding.enabled (eq .component "producer") }}
        # The onboarding API and the Grist widget (docs/onboarding.md).
        - name: onboarding
          containerPort: {{ $root.Values.onboarding.port }}
          protocol: TCP
        {{- end }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
        failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/ds2grist
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if $fileRefs }}
        - name: secrets
          mountPath: {{ $root.Values.secrets.mountPath }}
          readOnly: true
        {{- end }}
        {{- with $root.Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "ds2grist.fullname" $root }}
        items:
          - key: config.json
            path: config.json
    - name: tmp
      emptyDir:
        sizeLimit: {{ $root.Values.tmpSizeLimit }}
    {{- if $fileRefs }}
    - name: secrets
      projected:
        defaultMode: {{ $root.Values.secrets.fileMode }}
        sources:
          {{- range $r := $fileRefs }}
          - secret:
              name: {{ $r.secretName | quote }}
              items:
                - key: {{ $r.key | quote }}
                  path: {{ $r.path | quote }}
          {{- end }}
    {{- end }}
    {{- with $root.Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
