package main

import (
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// main discards the manager's logs; the tests call run directly, and
// controller-runtime would otherwise complain that no logger was set.
func init() { ctrl.SetLogger(logr.Discard()) }

// The demo's whole flow, shortened: control plane, three-node hub, manager,
// the samples, and 200 messages per flow through the operator's bindings.
// It fails if any consumer does not get what its semantic promises, or if
// the message payment-ledger's bug rejects is not set aside once and
// processed once after its replay.
func TestDemoKeepsEveryPromise(t *testing.T) {
	results, kept, err := run(context.Background(), options{messages: 200, timeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !kept {
		t.Error("a flow broke its promise (see the table above)")
	}
	checkDeadLetter(t, results)
}

// checkDeadLetter: the message a consumer's bug rejected as poison is in
// its dead-letter Topic once, is processed once only after the bug is
// fixed and the letter replayed, and the dead-letter Topic then holds
// none of that consumer's letters.
func checkDeadLetter(t *testing.T, results []flowResult) {
	t.Helper()
	var dl *deadLetterResult
	for _, r := range results {
		if r.deadLetter != nil {
			dl = r.deadLetter
		}
	}
	if dl == nil {
		t.Fatal("no flow set a dead letter aside, yet config/samples gives payment-ledger a dead-letter Topic")
	}
	if dl.rejected < 1 {
		t.Errorf("%s's handler never rejected message #%d: the bug did not hit it", dl.route.consumer, dl.message)
	}
	if dl.setAside != 1 {
		t.Errorf("message #%d set aside %d times in %s, want once", dl.message, dl.setAside, dl.route.topic)
	}
	if dl.processedBefore != 0 || dl.processed != 1 {
		t.Errorf("message #%d processed %d time(s) before the replay and %d in all, want 0 and 1", dl.message, dl.processedBefore, dl.processed)
	}
	if dl.left != 0 {
		t.Errorf("%d dead letter(s) left in %s after the replay", dl.left, dl.route.topic)
	}
	if dl.replayKey == "" || dl.replayKey != dl.originalKey {
		t.Errorf("the replay reached the consumer under key %q, want the original's %q", dl.replayKey, dl.originalKey)
	}
}

// Under the demo's faults the table shows the trade-off: AtMostOnce loses
// some and never repeats one, AtLeastOnce loses none, ExactlyOnce neither
// loses nor repeats.
func TestDemoUnderFaultsShowsTheTradeOff(t *testing.T) {
	picture := filepath.Join(t.TempDir(), "flows.svg")
	results, kept, err := run(context.Background(), options{faults: true, messages: 300, timeout: 3 * time.Minute, picture: picture})
	if err != nil {
		t.Fatal(err)
	}
	if !kept {
		t.Error("a flow broke its promise (see the table above)")
	}
	lostAtMostOnce := 0
	seen := map[hubflowv1.DeliverySemantic]bool{}
	for _, r := range results {
		for _, c := range r.consumers {
			seen[c.semantic] = true
			switch c.semantic {
			case hubflowv1.AtMostOnce:
				lostAtMostOnce += c.lost
				if c.duplicates != 0 {
					t.Errorf("%s (AtMostOnce) handled %d messages twice", c.name, c.duplicates)
				}
			case hubflowv1.AtLeastOnce:
				if c.lost != 0 {
					t.Errorf("%s (AtLeastOnce) lost %d messages", c.name, c.lost)
				}
			case hubflowv1.ExactlyOnce:
				if c.lost != 0 || c.duplicates != 0 {
					t.Errorf("%s (ExactlyOnce) lost %d, handled %d twice", c.name, c.lost, c.duplicates)
				}
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("the samples covered %v, want all three semantics", seen)
	}
	svg, err := os.ReadFile(picture)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg, new(struct{})); err != nil || !strings.Contains(string(svg), "payment-ledger") {
		t.Errorf("the picture is not an SVG of the flows (%v): %.200s", err, svg)
	}
	if lostAtMostOnce == 0 {
		t.Error("AtMostOnce lost nothing under faults: the faults did not hit its flow, so the table shows no trade-off")
	}
	checkDeadLetter(t, results)
}
