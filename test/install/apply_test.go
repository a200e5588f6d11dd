package install

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hubflow/hubflow/internal/testenv"
)

// TestInstallsApplyServerSide sends what `make deploy` and the chart install
// to a real kube-apiserver in a server-side dry run: schema, RBAC (an
// escalation would be refused) and CRD updates are checked by the server
// itself, and nothing is persisted.
func TestInstallsApplyServerSide(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfigFile, err := env.KubeconfigFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A dry run persists nothing, so the namespaces the objects go into
	// must exist for real.
	for _, ns := range []string{"hubflow-system", "team-a", "team-b"} {
		if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	kubectl := tool(t, "kubectl")
	apply := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := run(t, kubectl, append([]string{"--kubeconfig", kubeconfigFile, "apply", "--server-side", "--dry-run=server", "--field-manager=hubflow-install-test"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}

	t.Run("make deploy overlay", func(t *testing.T) {
		dir := deployOverlay(t, "registry.example:5000/hubflow:v1.2.3", "nats://hub.example:4222")
		out := apply(t, "-k", dir)
		for _, want := range []string{"deployment.apps/hubflow-controller-manager serverside-applied", "customresourcedefinition.apiextensions.k8s.io/topics.hubflow.io serverside-applied"} {
			if !strings.Contains(out, want+" (server dry run)") {
				t.Errorf("kubectl apply output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("gateway", func(t *testing.T) {
		out := apply(t, "-k", filepath.Join(testenv.RepoRoot(), "config", "gateway"))
		for _, want := range []string{"deployment.apps/hubflow-gateway serverside-applied", "clusterrole.rbac.authorization.k8s.io/hubflow-gateway-role serverside-applied",
			"service/hubflow-gateway serverside-applied"} {
			if !strings.Contains(out, want+" (server dry run)") {
				t.Errorf("kubectl apply output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("helm chart with every option", func(t *testing.T) {
		args := []string{"template", "hubflow", filepath.Join(testenv.RepoRoot(), "charts", "hubflow"), "--namespace", "hubflow-system", "--include-crds",
			"--set", "watchNamespaces={team-a,team-b}", "--set", "hub.credentialsSecret=hub-creds", "--set", "hub.tlsSecret=hub-tls",
			"--set", "signingKey.secret=k", "--set", "signingKey.account=ADHUBFLOW", "--set", "replicas=2"}
		rendered, err := run(t, tool(t, "helm"), args...)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "chart.yaml")
		if err := os.WriteFile(file, rendered, 0o600); err != nil {
			t.Fatal(err)
		}
		out := apply(t, "-f", file)
		for _, want := range []string{"rolebinding.rbac.authorization.k8s.io/hubflow-manager-rolebinding serverside-applied", "deployment.apps/hubflow-controller-manager serverside-applied"} {
			if !strings.Contains(out, want+" (server dry run)") {
				t.Errorf("kubectl apply output lacks %q:\n%s", want, out)
			}
		}
	})
}

func deployOverlay(t *testing.T, img, natsURL string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := run(t, filepath.Join(testenv.RepoRoot(), "hack", "deploy-overlay.sh"), img, natsURL, dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return dir
}

// TestDeployOverlaySetsImageAndHub: `make deploy IMG=... NATS_URL=...` deploys
// that image against that hub, and refuses what is not an image or a URL.
func TestDeployOverlaySetsImageAndHub(t *testing.T) {
	for _, tc := range []struct{ img, want string }{
		{"registry.example:5000/team/hubflow:v1.2.3", "registry.example:5000/team/hubflow:v1.2.3"},
		{"localhost:5000/hubflow", "localhost:5000/hubflow:latest"},
		{"hubflow/manager@sha256:" + strings.Repeat("a", 64), "hubflow/manager@sha256:" + strings.Repeat("a", 64)},
	} {
		objs := kustomize(t, deployOverlay(t, tc.img, "nats://hub.example:4222"))
		c := managerContainer(t, find(t, objs, "Deployment", "hubflow-controller-manager"))
		if c["image"] != tc.want {
			t.Errorf("IMG=%s: image = %v, want %s", tc.img, c["image"], tc.want)
		}
		if v := envValue(c, "HUBFLOW_NATS_URL"); v != "nats://hub.example:4222" {
			t.Errorf("IMG=%s: HUBFLOW_NATS_URL = %q", tc.img, v)
		}
	}
	for _, bad := range [][2]string{{"", "nats://hub:4222"}, {"hubflow:v1", "http://hub:4222"}} {
		cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "hack", "deploy-overlay.sh"), bad[0], bad[1], t.TempDir())
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("deploy-overlay.sh %q %q succeeded; want a refusal:\n%s", bad[0], bad[1], out)
		}
	}
}
