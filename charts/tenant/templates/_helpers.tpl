{{/*
Name of every object of the release: the release name, cut to a DNS label.
*/}}
{{- define "tenant.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tenant.configMapName" -}}
{{- printf "%s-config" (include "tenant.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{- define "tenant.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: stable for the life of the release (Deployment selectors are immutable).
*/}}
{{- define "tenant.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "tenant.labels" -}}
{{ include "tenant.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.release | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: app
app.kubernetes.io/part-of: tenant-orchestrator
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "tenant.chart" . }}
tenant: {{ .Values.tenant.id | quote }}
environment: {{ .Values.tenant.environment | quote }}
tier: {{ .Values.tenant.tier | quote }}
group: {{ .Values.tenant.group | quote }}
{{- end -}}

{{/*
Sizing of the tenant's tier, as YAML (use with fromYaml).
*/}}
{{- define "tenant.tierSettings" -}}
{{- $tier := .Values.tenant.tier -}}
{{- if not (hasKey .Values.tiers $tier) -}}
{{- fail (printf "tenant.tier %q has no entry under tiers" $tier) -}}
{{- end -}}
{{- $settings := get .Values.tiers $tier -}}
{{- if and $settings.hpa.enabled (gt (int $settings.hpa.minReplicas) (int $settings.hpa.maxReplicas)) -}}
{{- fail (printf "tiers.%s.hpa: minReplicas is greater than maxReplicas" $tier) -}}
{{- end -}}
{{- toYaml $settings -}}
{{- end -}}

{{/*
The image, by digest only.
*/}}
{{- define "tenant.image" -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- end -}}

{{/*
The tenant's non-secret configuration as NAME: "value" lines: the ConfigMap's data, and
the migration Job's environment (a pre-install hook runs before the ConfigMap exists).
*/}}
{{- define "tenant.configData" -}}
TENANT_ID: {{ .Values.tenant.id | quote }}
TENANT_ENVIRONMENT: {{ .Values.tenant.environment | quote }}
TENANT_TIER: {{ .Values.tenant.tier | quote }}
TENANT_GROUP: {{ .Values.tenant.group | quote }}
RELEASE: {{ .Values.release | quote }}
AWS_REGION: {{ .Values.tenant.region | quote }}
AWS_DEFAULT_REGION: {{ .Values.tenant.region | quote }}
SSM_PREFIX: {{ .Values.config.ssmPrefix | quote }}
DATABASE_ENDPOINT: {{ .Values.config.databaseEndpoint | quote }}
{{- with .Values.config.databaseReaderEndpoint }}
DATABASE_READER_ENDPOINT: {{ . | quote }}
{{- end }}
DATABASE_PORT: {{ .Values.config.databasePort | int | toString | quote }}
DATABASE_NAME: {{ .Values.config.databaseName | quote }}
BUCKET_NAME: {{ .Values.config.bucketName | quote }}
{{- end -}}
