package faults

import (
	"context"
	"testing"
	"time"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/testnats"
)

// TestStreamRecreatedUnderARunningFlow: while publishers and a consumer
// run, the stream is deleted (with its durable and its messages) and
// created again, as the operator does when it repairs an out-of-band
// deletion or a Topic is recreated. Messages the old stream held and had
// not delivered go with it: that is what deleting a stream means. What must
// hold: the producer and the consumer carry on against the new stream
// without a restart; every message the new stream holds, and every message
// acknowledged after it was created, is processed (acknowledging
// semantics); the new stream holds no message twice (ExactlyOnce), and no
// Publish made after the recreation is processed twice; every failed
// Publish says "not stored" or "outcome unknown", and none that said "not
// stored" is in the stream. The acknowledging consumers keep a FileDedup
// record across the recreation: keys of the new stream's sequences must not
// be taken for the old one's (issue 9, item 1).
func TestStreamRecreatedUnderARunningFlow(t *testing.T) {
	for _, sem := range []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce, hubflowv1.AtLeastOnce, hubflowv1.AtMostOnce} {
		t.Run(string(sem), func(t *testing.T) {
			hub := singleNode(t)
			js := testnats.Connect(t, hub.URL())
			f, err := newTunedFlow(sem, hub.URL(), outageTuning)
			if err != nil {
				t.Fatal(err)
			}
			f.fileDedup = true
			lf := startLongFlow(t, hub, nil, js, f, account, 100000)
			lf.awaitAcked(100)

			lf.w.at("deleting the stream")
			deleted := time.Now()
			ctx, cancel := context.WithTimeout(lf.ctx, 10*time.Second)
			err = js.DeleteStream(ctx, f.stream.Name)
			cancel()
			if err != nil {
				t.Fatalf("deleting the stream: %v", err)
			}
			lf.w.at("creating the stream and the durable again")
			if err := f.create(lf.ctx, js, hub); err != nil {
				t.Fatalf("recreating the stream: %v", err)
			}
			recreated := time.Now()
			lf.awaitAcked(200) // the flow goes on against the new stream
			r := lf.finish()

			var unprocessedInNew, lostAfter, twiceAfter, goneWithOld []int
			for i := range r.published {
				called := time.Unix(0, lf.calledAt[i].Load())
				ackedAt := lf.ackedAt[i].Load()
				processed := lf.led.count(i)
				switch {
				case r.stream.copies[i] > 0 && processed == 0:
					unprocessedInNew = append(unprocessedInNew, i)
				case ackedAt > recreated.UnixNano() && processed == 0:
					lostAfter = append(lostAfter, i)
				case ackedAt != 0 && ackedAt < deleted.UnixNano() && processed == 0:
					goneWithOld = append(goneWithOld, i)
				}
				if processed > 1 && called.After(recreated) {
					twiceAfter = append(twiceAfter, i)
				}
			}
			t.Logf("%s: stream deleted and created again in %s; %d acknowledged messages went with the old stream unprocessed (allowed)\n%s",
				sem, recreated.Sub(deleted).Round(time.Millisecond), len(goneWithOld), r)
			if r.stream.stored == 0 {
				t.Error("the new stream holds nothing: the case proves nothing")
			}
			if n := r.byOutcome[unclassified]; n > 0 {
				ex, _ := lf.examples.Load(unclassified)
				t.Errorf("%d Publish errors say neither \"not stored\" nor \"outcome unknown\", e.g. %v", n, ex)
			}
			if len(r.lies) > 0 {
				t.Errorf("%d messages whose Publish said \"not stored\" are in the new stream, first %v", len(r.lies), first(r.lies, 10))
			}
			if sem == hubflowv1.AtMostOnce {
				if r.ledger.twice > 0 {
					t.Errorf("AtMostOnce: %d messages processed twice", r.ledger.twice)
				}
				if len(unprocessedInNew) > r.stream.stored/2 {
					t.Errorf("AtMostOnce: %d of the new stream's %d messages never processed, first %v: the consumer does not read the new stream",
						len(unprocessedInNew), r.stream.stored, first(unprocessedInNew, 10))
				}
				return
			}
			if len(unprocessedInNew) > 0 {
				t.Errorf("%d messages of the new stream never processed, first %v", len(unprocessedInNew), first(unprocessedInNew, 10))
			}
			if len(lostAfter) > 0 {
				t.Errorf("%d messages acknowledged after the recreation never processed, first %v", len(lostAfter), first(lostAfter, 10))
			}
			if sem == hubflowv1.ExactlyOnce {
				if r.stream.storedTwice > 0 {
					t.Errorf("ExactlyOnce: the new stream holds %d messages twice", r.stream.storedTwice)
				}
				if len(twiceAfter) > 0 {
					t.Errorf("ExactlyOnce: %d messages published after the recreation processed twice, first %v", len(twiceAfter), first(twiceAfter, 10))
				}
			}
		})
	}
}
