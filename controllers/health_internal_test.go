package controllers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// notFailures are the reasons that never describe a False Ready or Synced.
var notFailures = map[string]bool{
	ReasonReady: true, ReasonReconciled: true, ReasonStreamRecreated: true,
	ReasonIssued: true, ReasonHubWithoutAuth: true, ReasonNotRenewed: true,
	ReasonAdopted: true, // the reason of the Adopted condition, not a failure
	// the reasons of dead-letter events, never of a condition
	ReasonDeadLettered: true, ReasonDeadLetterStuck: true, ReasonDeadLettersReplayed: true, ReasonReplayFailed: true,
}

// reasonConstants reads every `Reason... = "..."` constant of the packages
// that report failures, so a new reason cannot skip classification.
func reasonConstants(t *testing.T) map[string]string {
	t.Helper()
	found := map[string]string{}
	for _, dir := range []string{".", filepath.Join("..", "internal", "semantic")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				spec, ok := n.(*ast.ValueSpec)
				if !ok {
					return true
				}
				for i, name := range spec.Names {
					if !strings.HasPrefix(name.Name, "Reason") || i >= len(spec.Values) {
						continue
					}
					if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						found[v] = file + ": " + name.Name
					}
				}
				return true
			})
		}
	}
	if len(found) < 10 {
		t.Fatalf("found only %d reason constants (%v): the scan is broken", len(found), found)
	}
	return found
}

func TestEveryFailureReasonIsClassified(t *testing.T) {
	for reason, where := range reasonConstants(t) {
		if _, ok := failureKinds[reason]; !ok && !notFailures[reason] {
			t.Errorf("%s (%q) is neither in failureKinds (transient or permanent) nor in notFailures", where, reason)
		}
	}
}

// kstatusOf computes what Flux and cli-utils see for a Consumer whose status
// the conditions helpers wrote.
func kstatusOf(t *testing.T, generation int64, write func(conditions)) status.Status {
	t.Helper()
	c := &hubflowv1.Consumer{}
	c.APIVersion, c.Kind = hubflowv1.GroupVersion.String(), "Consumer"
	c.Name, c.Namespace, c.Generation = "c", "ns", generation
	write(newConditions(&c.Status.CommonStatus, 1))
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// TestKstatusFollowsEveryReason: Current only when Ready and as declared,
// Failed for what only a change can fix, InProgress while waiting helps.
func TestKstatusFollowsEveryReason(t *testing.T) {
	if got := kstatusOf(t, 1, func(c conditions) { c.ready("ok") }); got != status.CurrentStatus {
		t.Errorf("Ready and Synced: kstatus %s, want Current", got)
	}
	if got := kstatusOf(t, 2, func(c conditions) { c.ready("ok") }); got != status.InProgressStatus {
		t.Errorf("Ready for an older generation: kstatus %s, want InProgress", got)
	}
	for reason, kind := range failureKinds {
		want := status.InProgressStatus
		if kind == permanent {
			want = status.FailedStatus
		}
		for _, stillUsable := range []bool{false, true} {
			got := kstatusOf(t, 1, func(c conditions) { c.failed(stillUsable, reason, "because %s", "x") })
			if got != want {
				t.Errorf("%s (Ready=%v): kstatus %s, want %s", reason, stillUsable, got, want)
			}
		}
		// Recovering clears both kstatus conditions.
		got := kstatusOf(t, 1, func(c conditions) { c.failed(false, reason, "x"); c.ready("ok") })
		if got != status.CurrentStatus {
			t.Errorf("%s then Ready: kstatus %s, want Current", reason, got)
		}
	}
}
