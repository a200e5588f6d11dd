package controllers

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"
)

// exportedMetrics maps each metric the manager exports to its labels.
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	collectors := []prometheus.Collector{pendingGauge, ackPendingGauge, redeliveredGauge, readyGauge, failuresTotal, credentialsExpiry, hubConnected}
	descs := make(chan *prometheus.Desc, 64)
	for _, c := range collectors {
		c.Describe(descs)
	}
	close(descs)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	labels := regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for d := range descs {
		s := d.String()
		name := fqName.FindStringSubmatch(s)
		if name == nil {
			t.Fatalf("cannot read the metric name of %s", s)
		}
		var ls []string
		if m := labels.FindStringSubmatch(s); m != nil && m[1] != "" {
			ls = strings.Split(m[1], ",")
		}
		out[name[1]] = ls
	}
	return out
}

// TestPrometheusRules: the shipped alerts name metrics and labels the
// manager really exports, and are complete enough to page someone.
func TestPrometheusRules(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert       string            `json:"alert"`
					Expr        string            `json:"expr"`
					For         string            `json:"for"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(raw, &rule); err != nil {
		t.Fatalf("rules.yaml: %v", err)
	}
	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Kind != "PrometheusRule" {
		t.Fatalf("rules.yaml is %s %s, want a monitoring.coreos.com/v1 PrometheusRule", rule.APIVersion, rule.Kind)
	}
	exported := exportedMetrics(t)
	metricName := regexp.MustCompile(`\bhubflow_[a-z_]+\b`)
	labelRef := regexp.MustCompile(`\$labels\.([a-z_]+)`)
	alerts := 0
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts++
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rule %+v: want alert, expr, summary and description", r)
			}
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
			used := metricName.FindAllString(r.Expr, -1)
			if len(used) == 0 {
				t.Errorf("%s: expr %q uses no hubflow metric", r.Alert, r.Expr)
			}
			for _, m := range used {
				labels, ok := exported[m]
				if !ok {
					t.Errorf("%s: %s is not a metric the manager exports (%v)", r.Alert, m, exported)
					continue
				}
				for _, a := range r.Annotations {
					for _, ref := range labelRef.FindAllStringSubmatch(a, -1) {
						if !slices.Contains(labels, ref[1]) {
							t.Errorf("%s: annotation uses $labels.%s, which %s does not have (%v)", r.Alert, ref[1], m, labels)
						}
					}
				}
			}
		}
	}
	if alerts < 5 {
		t.Errorf("%d alerts, want lag growing, consumer stuck, credentials expiring, not ready and hub disconnected", alerts)
	}
}
