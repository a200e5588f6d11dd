package validation

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testkube"
)

// kubectl runs the pinned kubectl against the test control plane.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	file, err := env.KubeconfigFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testenv.Kubectl(), append([]string{"--kubeconfig", file}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestKubectlColumns: short names resolve, Synced is a default column, and
// -o wide adds the reason and message a user needs to act (and, for Topics,
// storage and replicas).
func TestKubectlColumns(t *testing.T) {
	ns := newNamespace(t)
	topic := testkube.Topic(ns, "orders", hubflowv1.AtLeastOnce)
	if err := k8s.Create(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	// No manager runs in this package: write the status a refused update leaves.
	meta.SetStatusCondition(&topic.Status.Conditions, metav1.Condition{Type: hubflowv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "usable"})
	meta.SetStatusCondition(&topic.Status.Conditions, metav1.Condition{Type: hubflowv1.ConditionSynced, Status: metav1.ConditionFalse, Reason: "ReplicasNeedCluster", Message: "NATS JetStream refused"})
	if err := k8s.Status().Update(context.Background(), topic); err != nil {
		t.Fatal(err)
	}

	plain := kubectl(t, "get", "hft", "-n", ns)
	for _, want := range []string{"SYNCED", "READY", "orders", "False"} {
		if !strings.Contains(plain, want) {
			t.Errorf("kubectl get hft lacks %q:\n%s", want, plain)
		}
	}
	if strings.Contains(plain, "REASON") {
		t.Errorf("REASON belongs to -o wide only:\n%s", plain)
	}
	wide := kubectl(t, "get", "topics", "-n", ns, "-o", "wide")
	for _, want := range []string{"STORAGE", "REPLICAS", "REASON", "MESSAGE", "File", "ReplicasNeedCluster", "NATS JetStream refused"} {
		if !strings.Contains(wide, want) {
			t.Errorf("kubectl get topics -o wide lacks %q:\n%s", want, wide)
		}
	}
	for _, short := range []string{"hfp", "hfc"} {
		kubectl(t, "get", short, "-n", ns) // fails the test if the short name does not resolve
	}
}
