// Package install checks the two ways hubflow is installed — kustomize
// (config/default, `make deploy`) and the Helm chart (charts/hubflow) — render
// the same objects, honour their settings, and are accepted by a real
// kube-apiserver in a server-side dry run.
package install

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/hubflow/hubflow/internal/manifests"
	"github.com/hubflow/hubflow/internal/testenv"
)

// tool finds a binary the Makefile provides: helm in bin/tools (HUBFLOW_HELM),
// kubectl next to the envtest control plane (KUBEBUILDER_ASSETS).
func tool(t *testing.T, name string) string {
	t.Helper()
	var path string
	switch name {
	case "helm":
		path = os.Getenv("HUBFLOW_HELM")
		if path == "" {
			path = filepath.Join(testenv.RepoRoot(), "bin", "tools", "helm")
		}
	case "kubectl":
		path = testenv.Kubectl()
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s not found at %s: run the tests with `make test` (it builds helm and kubectl): %v", name, path, err)
	}
	return path
}

func run(t *testing.T, bin string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// helmTemplate renders the chart as release "hubflow" in hubflow-system, the
// names config/default uses, with --set values.
func helmTemplate(t *testing.T, sets ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	args := []string{"template", "hubflow", filepath.Join(testenv.RepoRoot(), "charts", "hubflow"),
		"--namespace", "hubflow-system", "--include-crds"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := run(t, tool(t, "helm"), args...)
	if err != nil {
		return nil, err
	}
	return manifests.DecodeAll(bytes.NewReader(out))
}

func mustHelmTemplate(t *testing.T, sets ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := helmTemplate(t, sets...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, err := run(t, tool(t, "kubectl"), "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifests.DecodeAll(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func key(o *unstructured.Unstructured) string {
	return fmt.Sprintf("%s/%s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
}

func byKey(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[key(o)] = o
	}
	return m
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, key(o))
	}
	t.Fatalf("no %s %s rendered; got %v", kind, name, keys)
	return nil
}

// managerContainer returns the manager container of a rendered Deployment.
func managerContainer(t *testing.T, deploy *unstructured.Unstructured) map[string]any {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		if c, ok := c.(map[string]any); ok && c["name"] == "manager" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no manager container", deploy.GetName())
	return nil
}

func stringsOf(t *testing.T, m map[string]any, field string) []string {
	t.Helper()
	list, _, err := unstructured.NestedStringSlice(m, field)
	if err != nil {
		t.Fatalf("%s: %v", field, err)
	}
	return list
}

func envValue(c map[string]any, name string) string {
	env, _ := c["env"].([]any)
	for _, e := range env {
		if e, ok := e.(map[string]any); ok && e["name"] == name {
			v, _ := e["value"].(string)
			return v
		}
	}
	return ""
}
