package validation

import (
	"context"
	"testing"
)

// validCreates sit on the edges of the rules and must be accepted.
var validCreates = []struct{ name, yaml string }{
	{"topic AtMostOnce on Memory with discard Old", `kind: Topic
spec: {semantic: AtMostOnce, storage: Memory, discard: Old}`},
	{"topic ExactlyOnce with duplicateWindow equal to maxAge", `kind: Topic
spec: {semantic: ExactlyOnce, duplicateWindow: 1h, retention: {maxAge: 60m}}`},
	{"topic ExactlyOnce with maxAge of exactly 2m and no window", `kind: Topic
spec: {semantic: ExactlyOnce, retention: {maxAge: 120s}}`},
	{"topic composite and fractional durations", `kind: Topic
spec: {semantic: ExactlyOnce, duplicateWindow: 1.5m, retention: {maxAge: 1h30m}}`},
	{"topic size limits on their bounds", `kind: Topic
spec: {retention: {maxBytes: 1, maxMessageSize: 2147483647, maxMessages: 1}}`},
	{"topic subjects with wildcards", `kind: Topic
spec: {subjects: [orders, orders.*.eu, orders.>], replicas: 5}`},
	{"consumer ackWait on its bounds", `kind: Consumer
spec: {topicRef: {name: t}, ackWait: 12h, backoff: [1s, 12h]}`},
	// JetStream refuses len(BackOff) > MaxDeliver; the operator sends ackWait
	// followed by backoff, so maxDeliver 3 with two entries is the longest list.
	{"consumer pushed to an endpoint", `kind: Consumer
spec: {topicRef: {name: t}, push: {url: "https://crm.example.com/hook", timeout: 5s, concurrency: 8}}`},
	{"consumer push requests signed", `kind: Consumer
spec: {topicRef: {name: t}, push: {url: "https://crm.example.com/hook", signing: {secretRef: {name: crm-signing}}}}`},
	{"producer open to the gateway", `kind: Producer
spec: {topicRef: {name: t}, gateway: {serviceAccounts: [checkout, billing], requestsPerSecond: 100}}`},
	{"consumer ExactlyOnce with maxDeliver and a dead-letter Topic", `kind: Consumer
spec: {topicRef: {name: t}, semantic: ExactlyOnce, maxDeliver: 5, deadLetter: {topicRef: {name: t-dead}}}`},
	{"consumer backoff one shorter than maxDeliver", `kind: Consumer
spec: {topicRef: {name: t}, maxDeliver: 3, backoff: [1m, 2m]}`},
	{"consumer AtMostOnce without ack settings", `kind: Consumer
spec: {topicRef: {name: t}, semantic: AtMostOnce, deliverPolicy: LastPerSubject, durableName: live_view}`},
	{"producer publish policy on its bounds", `kind: Producer
spec: {topicRef: {name: t}, semantic: ExactlyOnce, publish: {ackTimeout: 100ms, retries: 1000, retryWait: 5m}}`},
	{"producer retries 0", `kind: Producer
spec: {topicRef: {name: t}, publish: {retries: 0, retryWait: 0s}}`},
}

// TestAcceptedCreates shows the rules do not refuse the edge of what is valid.
func TestAcceptedCreates(t *testing.T) {
	ns := newNamespace(t)
	for _, c := range validCreates {
		t.Run(c.name, func(t *testing.T) {
			if err := k8s.Create(context.Background(), manifest(t, ns, c.yaml), strict); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// validUpdates are changes JetStream can apply in place; the transition rules
// must let them through.
var validUpdates = []struct {
	name          string
	before, after string
}{
	{"topic maxAge changed", `kind: Topic
spec: {retention: {maxAge: 24h}}`, `kind: Topic
spec: {retention: {maxAge: 72h}}`},
	{"topic replicas changed", `kind: Topic
spec: {replicas: 1}`, `kind: Topic
spec: {replicas: 3}`},
	{"topic subject added", `kind: Topic
spec: {subjects: [orders.created]}`, `kind: Topic
spec: {subjects: [orders.created, orders.cancelled]}`},
	{"topic storage restated unchanged", `kind: Topic
spec: {semantic: AtMostOnce, storage: Memory, discard: Old}`, `kind: Topic
spec: {semantic: AtMostOnce, storage: Memory, discard: New, retention: {maxBytes: 64Mi}}`},
	{"topic duplicateWindow changed within maxAge", `kind: Topic
spec: {semantic: ExactlyOnce, duplicateWindow: 2m, retention: {maxAge: 1h}}`, `kind: Topic
spec: {semantic: ExactlyOnce, duplicateWindow: 10m, retention: {maxAge: 1h}}`},
	{"consumer ackWait, backoff and maxAckPending changed", `kind: Consumer
spec: {topicRef: {name: orders}, ackWait: 30s, backoff: [1m], maxAckPending: 100}`, `kind: Consumer
spec: {topicRef: {name: orders}, ackWait: 1m, backoff: [2m, 5m], maxAckPending: 500}`},
	{"consumer maxDeliver set", `kind: Consumer
spec: {topicRef: {name: orders}}`, `kind: Consumer
spec: {topicRef: {name: orders}, maxDeliver: 10, backoff: [1m, 2m]}`},
	{"consumer durableName kept", `kind: Consumer
spec: {topicRef: {name: orders}, durableName: billing, ackWait: 30s}`, `kind: Consumer
spec: {topicRef: {name: orders}, durableName: billing, ackWait: 45s}`},
	{"consumer semantic AtLeastOnce to ExactlyOnce", `kind: Consumer
spec: {topicRef: {name: orders}, semantic: AtLeastOnce}`, `kind: Consumer
spec: {topicRef: {name: orders}, semantic: ExactlyOnce}`},
	{"consumer filterSubjects changed", `kind: Consumer
spec: {topicRef: {name: orders}, filterSubjects: [orders.created]}`, `kind: Consumer
spec: {topicRef: {name: orders}, filterSubjects: [orders.created, orders.*.eu]}`},
	{"producer publish policy changed", `kind: Producer
spec: {topicRef: {name: orders}, publish: {ackTimeout: 5s}}`, `kind: Producer
spec: {topicRef: {name: orders}, publish: {ackTimeout: 2s, retries: 10, retryWait: 250ms}}`},
}

// TestAcceptedUpdates shows the transition rules do not over-refuse.
func TestAcceptedUpdates(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	for _, c := range validUpdates {
		t.Run(c.name, func(t *testing.T) {
			obj := manifest(t, ns, c.before)
			if err := k8s.Create(ctx, obj, strict); err != nil {
				t.Fatalf("creating: %v", err)
			}
			obj.Object["spec"] = manifest(t, ns, c.after).Object["spec"]
			if err := k8s.Update(ctx, obj, strict); err != nil {
				t.Fatalf("update refused: %v", err)
			}
		})
	}
}
