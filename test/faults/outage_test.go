package faults

import (
	"strings"
	"testing"
	"time"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/testnats"
)

// outageTuning keeps the long-outage cases short: a 2s duplicate window
// that the producers' retry horizon (3×400ms + 2×200ms = 1.6s) fits in, so
// a hub away for a few seconds is away for longer than both.
var outageTuning = tuning{
	replicas: 1, duplicateWindow: 2 * time.Second,
	ackTimeout: 400 * time.Millisecond, retries: 2, retryWait: 200 * time.Millisecond,
	ackWait: 2 * time.Second,
}

// TestOutageLongerThanTheDuplicateWindow: the hub is unreachable for two
// and a half duplicate windows while the producers keep calling Publish;
// just before, the network lost the acknowledgements of messages the
// stream stored. Retries made during the outage must not reach the stream after
// the window (one Publish stored twice, and its caller told it failed), and
// each failed Publish must say whether the message is "not stored" or its
// outcome is unknown. Afterwards each semantic's promise holds.
func TestOutageLongerThanTheDuplicateWindow(t *testing.T) {
	for _, sem := range []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce, hubflowv1.AtLeastOnce, hubflowv1.AtMostOnce} {
		t.Run(string(sem), func(t *testing.T) {
			hub := singleNode(t)
			js := testnats.Connect(t, hub.URL())
			proxy := startProxy(t, strings.TrimPrefix(hub.URL(), "nats://"))
			f, err := newTunedFlow(sem, proxy.URL(), outageTuning)
			if err != nil {
				t.Fatal(err)
			}
			window := outageTuning.duplicateWindow
			lf := startLongFlow(t, hub, proxy, js, f, account, 100000)
			down := window * 5 / 2
			lf.outage(down, 20)
			lf.awaitAcked(200) // the producers recovered
			r := lf.finish()
			t.Logf("%s: hub down for %s (duplicate window %s, retry horizon %s), %d Publish calls started during the outage\n%s",
				sem, down, window, f.producerPolicy.RetryHorizon(), lf.callsDuringOutage(), r)
			lf.checkPromise(r)
			if lf.callsDuringOutage() == 0 {
				t.Error("no Publish call during the outage: the case proves nothing")
			}
		})
	}
}
