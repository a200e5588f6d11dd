package topology

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

func TestCredentials(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		conds []metav1.Condition
		want  string
	}{
		{"no condition yet", nil, "not issued yet"},
		{"hub without auth", []metav1.Condition{withoutAuth()}, "none (hub without auth)"},
		{"issued", []metav1.Condition{issued("2026-12-08T10:30:00Z")}, "2026-12-08T10:30:00Z (in 1d2h)"},
		{"issued, under an hour left", []metav1.Condition{issued("2026-12-07T08:42:30Z")}, "2026-12-07T08:42:30Z (in 42m)"},
		{"expired", []metav1.Condition{issued("2026-12-07T07:00:00Z")}, "2026-12-07T07:00:00Z (expired)"},
		{"not renewed", []metav1.Condition{{Type: hubflowv1.ConditionCredentialsIssued, Status: metav1.ConditionFalse, Reason: "NotRenewed"}}, "not renewed"},
		{"binding conflict", []metav1.Condition{{Type: hubflowv1.ConditionCredentialsIssued, Status: metav1.ConditionFalse, Reason: "BindingConflict"}}, "not issued: BindingConflict"},
		{"issued, message without expiry", []metav1.Condition{{Type: hubflowv1.ConditionCredentialsIssued, Status: metav1.ConditionTrue, Reason: "Issued", Message: "x"}}, "issued"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := credentials(tc.conds, now); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStatusGolden is the status table of the degraded samples.
func TestStatusGolden(t *testing.T) {
	o := degraded(t)
	var out bytes.Buffer
	if err := WriteStatus(&out, Status(o.topics, o.producers, o.consumers, time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC))); err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "degraded.status.golden"), out.Bytes())
}
