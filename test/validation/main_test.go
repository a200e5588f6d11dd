// Package validation checks hubflow's CRDs against a real kube-apiserver: the
// samples apply, defaults are filled in, and bad manifests are refused at
// admission with an error that names the offending field.
package validation

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1alpha1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/manifests"
	"github.com/hubflow/hubflow/internal/testenv"
)

var (
	k8s client.Client
	// env is the control plane, for tests that run kubectl against it.
	env *testenv.Env
)

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s = env.Client
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}

// strict makes the API server refuse unknown fields instead of dropping them,
// so a typo in a sample or a test manifest fails loudly.
var strict = client.FieldValidation(metav1.FieldValidationStrict)

// newNamespace creates a namespace of its own for one test. envtest runs no
// namespace controller, so namespaces are never cleaned up; each test gets a
// fresh one instead.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "validation-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// manifest turns a test's YAML into one hubflow object in namespace ns. The
// apiVersion is filled in, and a name is generated unless the YAML sets one.
func manifest(t *testing.T, ns, text string) *unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.DecodeAll(strings.NewReader(text))
	if err != nil || len(objs) != 1 {
		t.Fatalf("test manifest must be one YAML object (err %v, got %d):\n%s", err, len(objs), text)
	}
	u := objs[0]
	u.SetAPIVersion(hubflowv1alpha1.GroupVersion.String())
	u.SetNamespace(ns)
	if u.GetName() == "" {
		u.SetGenerateName(strings.ToLower(u.GetKind()) + "-")
	}
	return u
}

// refusedAt checks that err is an Invalid error with a cause on exactly the
// field path want whose message contains every fragment in msg.
func refusedAt(err error, want string, msg ...string) error {
	if err == nil {
		return errors.New("accepted, want refused")
	}
	if !apierrors.IsInvalid(err) {
		return fmt.Errorf("refused as %q, want Invalid: %w", apierrors.ReasonForError(err), err)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return fmt.Errorf("Invalid error without details: %w", err)
	}
	for _, cause := range status.Status().Details.Causes {
		if cause.Field != want {
			continue
		}
		missing := false
		for _, m := range msg {
			missing = missing || !strings.Contains(cause.Message, m)
		}
		if !missing {
			return nil
		}
	}
	return fmt.Errorf("no cause at %s containing %q in: %w", want, msg, err)
}
