{{/* The objects' name: the release name when it says predictor-operator, else <release>-predictor-operator. */}}
{{- define "predictor-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The pods' selector: config/'s, plus the release (two releases in one namespace select apart). */}}
{{- define "predictor-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every object's labels: config/'s (name, part-of) and Helm's. */}}
{{- define "predictor-operator.labels" -}}
{{ include "predictor-operator.selectorLabels" . }}
app.kubernetes.io/part-of: mlops
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The namespaces the operator watches in namespaced mode (a list; the release namespace by default). */}}
{{- define "predictor-operator.watchNamespaces" -}}
{{- .Values.namespaced.namespaces | default (list .Release.Namespace) | toJson -}}
{{- end -}}

{{/* The operator's image: repository@digest, else repository:tag (the appVersion by default). */}}
{{- define "predictor-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The subjects of the operator's bindings: its ServiceAccount. */}}
{{- define "predictor-operator.subjects" -}}
- kind: ServiceAccount
  name: {{ include "predictor-operator.fullname" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}
