package install

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/hubflow/hubflow/internal/testenv"
)

// withoutLabels returns a copy of o without labels, and whether every label
// of want is on o with the same value (the chart may add Helm's own).
func withoutLabels(o, want *unstructured.Unstructured) (*unstructured.Unstructured, bool) {
	o = o.DeepCopy()
	has := o.GetLabels()
	ok := true
	for k, v := range want.GetLabels() {
		ok = ok && has[k] == v
	}
	o.SetLabels(nil)
	return o, ok
}

// TestChartRendersWhatConfigDefaultInstalls keeps the two install paths from
// drifting: with the values that mirror config/default, the chart renders
// every object kustomize does, field for field, except the Namespace (Helm
// installs into a release namespace: `--create-namespace`).
func TestChartRendersWhatConfigDefaultInstalls(t *testing.T) {
	fromKustomize := byKey(kustomize(t, testenv.RepoRoot()+"/config/default"))
	delete(fromKustomize, "Namespace//hubflow-system")
	sameObjects(t, "config/default", fromKustomize, byKey(mustHelmTemplate(t, "image.tag=dev")))
}

// TestChartGatewayIsWhatConfigGatewayInstalls does the same for the gateway:
// gateway.enabled adds exactly the objects of config/gateway.
func TestChartGatewayIsWhatConfigGatewayInstalls(t *testing.T) {
	without := byKey(mustHelmTemplate(t, "image.tag=dev"))
	added := byKey(mustHelmTemplate(t, "image.tag=dev", "gateway.enabled=true"))
	for k := range without {
		delete(added, k)
	}
	sameObjects(t, "config/gateway", byKey(kustomize(t, testenv.RepoRoot()+"/config/gateway")), added)
}

// sameObjects fails for every object only one side has, and for every field
// in which the chart's differs from kustomize's (labels: the chart may add
// Helm's own).
func sameObjects(t *testing.T, dir string, fromKustomize, fromHelm map[string]*unstructured.Unstructured) {
	t.Helper()
	var keys []string
	for k := range fromKustomize {
		keys = append(keys, k)
	}
	for k := range fromHelm {
		if _, ok := fromKustomize[k]; !ok {
			t.Errorf("the chart renders %s, which %s does not install", k, dir)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		want := fromKustomize[k]
		got, ok := fromHelm[k]
		if !ok {
			t.Errorf("%s installs %s; the chart does not render it", dir, k)
			continue
		}
		got, labelsOK := withoutLabels(got, want)
		if !labelsOK {
			t.Errorf("%s: the chart's labels %v lack some of %s's %v", k, fromHelm[k].GetLabels(), dir, want.GetLabels())
		}
		want, _ = withoutLabels(want, want)
		if !reflect.DeepEqual(got.Object, want.Object) {
			g, _ := yaml.Marshal(got.Object)
			w, _ := yaml.Marshal(want.Object)
			t.Errorf("%s differs between the chart and %s:\n%s", k, dir, lineDiff(string(g), string(w)))
		}
	}
}

func TestChartValues(t *testing.T) {
	const deployment = "hubflow-controller-manager"
	tests := []struct {
		name  string
		sets  []string
		check func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{
			name: "image and hub",
			sets: []string{"image.repository=registry.example:5000/hubflow", "image.tag=v1.2.3", "hub.url=nats://hub.example:4222", "hub.bindingURL=nats://public.example:4222"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				c := managerContainer(t, find(t, objs, "Deployment", deployment))
				if c["image"] != "registry.example:5000/hubflow:v1.2.3" {
					t.Errorf("image = %v", c["image"])
				}
				if v := envValue(c, "HUBFLOW_NATS_URL"); v != "nats://hub.example:4222" {
					t.Errorf("HUBFLOW_NATS_URL = %q", v)
				}
				wantArgs(t, c, []string{"--nats-url=$(HUBFLOW_NATS_URL)", "--binding-nats-url=nats://public.example:4222"}, nil)
			},
		},
		{
			name: "image tag defaults to the chart's appVersion",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				c := managerContainer(t, find(t, objs, "Deployment", deployment))
				if c["image"] != "hubflow/manager:0.1.0" {
					t.Errorf("image = %v, want hubflow/manager:0.1.0", c["image"])
				}
			},
		},
		{
			name: "manager credentials, TLS and signing key from Secrets",
			sets: []string{"hub.credentialsSecret=hub-creds", "hub.tlsSecret=hub-tls", "hub.tlsClientCert=true",
				"signingKey.secret=hubflow-signing-key", "signingKey.account=ADHUBFLOWACCOUNT", "signingKey.credentialsTTL=6h"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				d := find(t, objs, "Deployment", deployment)
				c := managerContainer(t, d)
				wantArgs(t, c, []string{
					"--nats-creds=/etc/hubflow/nats/nats.creds",
					"--nats-tls-ca=/etc/hubflow/nats-tls/ca.crt",
					"--nats-tls-cert=/etc/hubflow/nats-tls/tls.crt",
					"--nats-tls-key=/etc/hubflow/nats-tls/tls.key",
					"--nats-account-signing-key-file=/etc/hubflow/signing-key/seed",
					"--nats-account=ADHUBFLOWACCOUNT",
					"--credentials-ttl=6h",
				}, nil)
				volumes, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
				var secrets []string
				for _, v := range volumes {
					name, _, _ := unstructured.NestedString(v.(map[string]any), "secret", "secretName")
					secrets = append(secrets, name)
				}
				if got, want := strings.Join(secrets, ","), "hub-creds,hub-tls,hubflow-signing-key"; got != want {
					t.Errorf("secret volumes = %s, want %s", got, want)
				}
			},
		},
		{
			name: "watched namespaces bind the ClusterRole per namespace",
			sets: []string{"watchNamespaces={team-a,team-b}"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				wantArgs(t, managerContainer(t, find(t, objs, "Deployment", deployment)), []string{"--watch-namespaces=team-a,team-b"}, nil)
				var bound []string
				for _, o := range objs {
					switch {
					case o.GetKind() == "ClusterRoleBinding" && o.GetName() == "hubflow-manager-rolebinding":
						t.Errorf("a ClusterRoleBinding of the manager role grants every namespace; want RoleBindings only")
					case o.GetKind() == "RoleBinding" && o.GetName() == "hubflow-manager-rolebinding":
						bound = append(bound, o.GetNamespace())
					}
				}
				if got := strings.Join(bound, ","); got != "team-a,team-b" {
					t.Errorf("manager RoleBindings in %q, want team-a,team-b", got)
				}
			},
		},
		{
			name: "metrics and leader election off",
			sets: []string{"metrics.enabled=false", "leaderElection.enabled=false"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				wantArgs(t, managerContainer(t, find(t, objs, "Deployment", deployment)),
					[]string{"--metrics-bind-address=0"}, []string{"--leader-elect", "--metrics-secure"})
				for _, o := range objs {
					if o.GetKind() == "Service" || strings.Contains(o.GetName(), "leader-election") || strings.Contains(o.GetName(), "metrics") {
						t.Errorf("%s rendered with metrics and leader election off", key(o))
					}
				}
			},
		},
		{
			name: "cluster name",
			sets: []string{"clusterName=eu-west-1"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				wantArgs(t, managerContainer(t, find(t, objs, "Deployment", deployment)), []string{"--cluster-name=eu-west-1"}, nil)
			},
		},
		{
			name: "resources and extra flags",
			sets: []string{"resources.limits.memory=512Mi", "extraArgs={--resync-interval=5m}"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				c := managerContainer(t, find(t, objs, "Deployment", deployment))
				if mem, _, _ := unstructured.NestedString(c, "resources", "limits", "memory"); mem != "512Mi" {
					t.Errorf("memory limit = %q, want 512Mi", mem)
				}
				wantArgs(t, c, []string{"--resync-interval=5m"}, nil)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, mustHelmTemplate(t, tc.sets...)) })
	}
}

func wantArgs(t *testing.T, c map[string]any, present, absent []string) {
	t.Helper()
	args := stringsOf(t, c, "args")
	for _, a := range present {
		if !slices.Contains(args, a) {
			t.Errorf("manager args lack %s: %q", a, args)
		}
	}
	for _, a := range absent {
		if slices.Contains(args, a) {
			t.Errorf("manager args have %s: %q", a, args)
		}
	}
}

// TestChartRefusesIncompleteValues: a half-configured install fails at
// render time with the value to fix, not as a crash-looping pod.
func TestChartRefusesIncompleteValues(t *testing.T) {
	tests := []struct {
		sets    []string
		wantErr string
	}{
		{[]string{"signingKey.secret=k"}, "signingKey.account"},
		{[]string{"signingKey.account=ADHUBFLOW"}, "signingKey.secret"},
		{[]string{"replicas=2", "leaderElection.enabled=false"}, "leaderElection.enabled"},
	}
	for _, tc := range tests {
		_, err := helmTemplate(t, tc.sets...)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("helm template --set %v: err = %v, want one naming %s", tc.sets, err, tc.wantErr)
		}
	}
}

// lineDiff lists the lines only one side has ("-" the chart, "+" kustomize),
// enough to see which field drifted.
func lineDiff(chart, config string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	c, k := count(chart), count(config)
	var out []string
	for _, l := range strings.Split(chart, "\n") {
		if c[l] > k[l] {
			out = append(out, "- chart:     "+l)
			c[l]--
		}
	}
	for _, l := range strings.Split(config, "\n") {
		if k[l] > count(chart)[l] {
			out = append(out, "+ kustomize: "+l)
			k[l]--
		}
	}
	return strings.Join(out, "\n")
}

// TestServiceMonitorFindsTheManager: the shipped ServiceMonitor selects the
// metrics Service config/default installs, by its labels and port name.
func TestServiceMonitorFindsTheManager(t *testing.T) {
	monitor := find(t, kustomize(t, testenv.RepoRoot()+"/config/prometheus"), "ServiceMonitor", "hubflow-controller-manager")
	service := find(t, kustomize(t, testenv.RepoRoot()+"/config/default"), "Service", "hubflow-controller-manager-metrics")
	if monitor.GetNamespace() != service.GetNamespace() {
		t.Errorf("ServiceMonitor in %q, Service in %q", monitor.GetNamespace(), service.GetNamespace())
	}
	selector, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	for k, v := range selector {
		if service.GetLabels()[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s; the metrics Service has labels %v", k, v, service.GetLabels())
		}
	}
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	ports, _, _ := unstructured.NestedSlice(service.Object, "spec", "ports")
	for _, e := range endpoints {
		port := e.(map[string]any)["port"]
		found := false
		for _, p := range ports {
			found = found || p.(map[string]any)["name"] == port
		}
		if !found {
			t.Errorf("ServiceMonitor scrapes port %v; the Service has %v", port, ports)
		}
	}
}
