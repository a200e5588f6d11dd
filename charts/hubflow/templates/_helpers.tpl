{{/* Object names: the release name, then the same suffixes config/default uses after its "hubflow-" prefix. */}}
{{- define "hubflow.name" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "hubflow.labels" -}}
app.kubernetes.io/name: hubflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "hubflow.selectorLabels" -}}
app.kubernetes.io/name: hubflow
app.kubernetes.io/component: manager
{{- end -}}

{{- define "hubflow.serviceAccount" -}}
{{ include "hubflow.name" . }}-controller-manager
{{- end -}}
