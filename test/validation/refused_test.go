package validation

import (
	"context"
	"testing"
)

// A refusal is a manifest the API server must reject, the field path the
// error must name, and fragments of the message a user reads.
type refusal struct {
	name  string
	yaml  string
	field string
	msg   []string
}

// Fragments of the API server's own messages for schema (non-CEL) errors.
const (
	notMatching = "should match"
	unsupported = "Unsupported value"
	tooSmall    = "should be greater than or equal to"
	tooLarge    = "should be less than or equal to"
	required    = "Required value"
	duplicate   = "Duplicate value"
)

var invalidCreates = []refusal{
	// Topic: enums and bounds.
	{"topic semantic not an enum value", `kind: Topic
spec: {semantic: MostlyOnce}`, "spec.semantic", []string{unsupported, "MostlyOnce"}},
	{"topic storage not an enum value", `kind: Topic
spec: {storage: Disk}`, "spec.storage", []string{unsupported}},
	{"topic deletionPolicy not an enum value", `kind: Topic
spec: {deletionPolicy: Purge}`, "spec.deletionPolicy", []string{unsupported}},
	{"topic replicas 0", `kind: Topic
spec: {replicas: 0}`, "spec.replicas", []string{tooSmall + " 1"}},
	{"topic replicas 6", `kind: Topic
spec: {replicas: 6}`, "spec.replicas", []string{tooLarge + " 5"}},

	// Topic: the semantic contract.
	{"topic Memory storage with AtLeastOnce", `kind: Topic
spec: {semantic: AtLeastOnce, storage: Memory}`, "spec.storage", []string{"Forbidden", "Memory storage is only allowed with semantic AtMostOnce"}},
	{"topic Memory storage with ExactlyOnce", `kind: Topic
spec: {semantic: ExactlyOnce, storage: Memory}`, "spec.storage", []string{"Memory storage is only allowed"}},
	{"topic Memory storage with the default semantic", `kind: Topic
spec: {storage: Memory}`, "spec.storage", []string{"Memory storage is only allowed"}},
	{"topic duplicateWindow on AtLeastOnce", `kind: Topic
spec: {semantic: AtLeastOnce, duplicateWindow: 2m}`, "spec.duplicateWindow", []string{"Forbidden", "only to semantic ExactlyOnce"}},
	{"topic duplicateWindow longer than maxAge", `kind: Topic
spec: {semantic: ExactlyOnce, duplicateWindow: 10m, retention: {maxAge: 5m}}`, "spec.duplicateWindow", []string{"must not be longer than retention.maxAge"}},
	{"topic ExactlyOnce maxAge under the default window", `kind: Topic
spec: {semantic: ExactlyOnce, retention: {maxAge: 90s}}`, "spec.retention.maxAge", []string{"shorter than the default 2m duplicate window"}},
	{"topic discard Old on AtLeastOnce", `kind: Topic
spec: {semantic: AtLeastOnce, discard: Old}`, "spec.discard", []string{"Forbidden", "discard Old silently evicts"}},
	{"topic discard Old on ExactlyOnce", `kind: Topic
spec: {semantic: ExactlyOnce, discard: Old}`, "spec.discard", []string{"discard Old"}},

	// Topic: durations.
	{"topic maxAge in words", `kind: Topic
spec: {retention: {maxAge: 5 minutes}}`, "spec.retention.maxAge", []string{"must be a Go duration such as 90s, 30m or 24h"}},
	{"topic maxAge in days", `kind: Topic
spec: {retention: {maxAge: 7d}}`, "spec.retention.maxAge", []string{"use 168h"}},
	{"topic duplicateWindow in days", `kind: Topic
spec: {semantic: ExactlyOnce, duplicateWindow: 1d}`, "spec.duplicateWindow", []string{"no days", "24h for 1d"}},
	{"topic duplicateWindow without unit", `kind: Topic
spec: {semantic: ExactlyOnce, duplicateWindow: "10"}`, "spec.duplicateWindow", []string{"must be a Go duration"}},
	{"topic maxAge negative", `kind: Topic
spec: {retention: {maxAge: -1s}}`, "spec.retention.maxAge", []string{"must be a Go duration"}},
	{"topic maxAge 0s", `kind: Topic
spec: {retention: {maxAge: 0s}}`, "spec.retention.maxAge", []string{"must be at least 1s"}},
	// Beyond Go's time.Duration (about 2562047h) the pattern matches but CEL's
	// duration() cannot convert, so the rule's evaluation error refuses it; the
	// operator's typed client could not have decoded such an object anyway.
	{"topic maxAge beyond time.Duration", `kind: Topic
spec: {retention: {maxAge: 3000000h}}`, "spec.retention.maxAge", nil},
	{"topic duplicateWindow under 1s", `kind: Topic
spec: {semantic: ExactlyOnce, duplicateWindow: 500ms}`, "spec.duplicateWindow", []string{"must be at least 1s"}},

	// Topic: sizes and counts.
	{"topic maxBytes in GB", `kind: Topic
spec: {retention: {maxBytes: 10GB}}`, "spec.retention.maxBytes", []string{"without a B", "use 10G (10^9 bytes) or 10Gi"}},
	{"topic maxMessageSize in MB", `kind: Topic
spec: {retention: {maxMessageSize: 1MB}}`, "spec.retention.maxMessageSize", []string{"without a B", "1M or 1Mi for 1MB"}},
	{"topic maxBytes 0", `kind: Topic
spec: {retention: {maxBytes: "0"}}`, "spec.retention.maxBytes", []string{"whole number of bytes, at least 1"}},
	{"topic maxBytes 0 as an integer", `kind: Topic
spec: {retention: {maxBytes: 0}}`, "spec.retention.maxBytes", []string{"whole number of bytes, at least 1"}},
	{"topic maxBytes negative", `kind: Topic
spec: {retention: {maxBytes: -5Mi}}`, "spec.retention.maxBytes", []string{"whole number of bytes, at least 1"}},
	{"topic maxBytes fractional", `kind: Topic
spec: {retention: {maxBytes: 1500m}}`, "spec.retention.maxBytes", []string{"whole number of bytes"}},
	{"topic maxBytes not a quantity", `kind: Topic
spec: {retention: {maxBytes: 10GB}}`, "spec.retention.maxBytes", []string{notMatching}},
	{"topic maxMessageSize over 2Gi", `kind: Topic
spec: {retention: {maxMessageSize: 3Gi}}`, "spec.retention.maxMessageSize", []string{"between 1 and 2147483647"}},
	{"topic maxMessageSize exactly 2Gi", `kind: Topic
spec: {retention: {maxMessageSize: 2Gi}}`, "spec.retention.maxMessageSize", []string{"between 1 and 2147483647"}},
	{"topic maxMessages 0", `kind: Topic
spec: {retention: {maxMessages: 0}}`, "spec.retention.maxMessages", []string{tooSmall + " 1"}},

	// Topic: subjects.
	{"topic subject with a space", `kind: Topic
spec: {subjects: ["orders created"]}`, "spec.subjects[0]", []string{notMatching}},
	{"topic subject under $JS", `kind: Topic
spec: {subjects: ["$JS.API.STREAM.LIST"]}`, "spec.subjects[0]", []string{notMatching}},
	{"topic subject under _INBOX", `kind: Topic
spec: {subjects: ["_INBOX.x"]}`, "spec.subjects[0]", []string{"subjects starting with _INBOX are reserved"}},
	{"topic subject on a workload's inbox", `kind: Topic
spec: {subjects: ["_INBOX_shop_consumer_billing.>"]}`, "spec.subjects[0]", []string{"subjects starting with _INBOX are reserved"}},
	{"topic subject lone wildcard", `kind: Topic
spec: {subjects: [">"]}`, "spec.subjects[0]", []string{notMatching}},
	{"topic subject wildcard not last", `kind: Topic
spec: {subjects: ["a.>.b"]}`, "spec.subjects[0]", []string{notMatching}},
	{"topic subject empty token", `kind: Topic
spec: {subjects: ["orders..created"]}`, "spec.subjects[0]", []string{notMatching}},
	{"topic second subject invalid", `kind: Topic
spec: {subjects: ["orders.created", "orders created"]}`, "spec.subjects[1]", []string{notMatching}},
	{"topic duplicate subjects", `kind: Topic
spec: {subjects: ["orders.created", "orders.created"]}`, "spec.subjects[1]", []string{duplicate}},

	// Producer.
	{"producer without topicRef", `kind: Producer
spec: {semantic: AtLeastOnce}`, "spec.topicRef", []string{required}},
	{"producer topicRef with empty name", `kind: Producer
spec: {topicRef: {name: ""}}`, "spec.topicRef.name", nil},
	{"producer semantic in the wrong case", `kind: Producer
spec: {topicRef: {name: t}, semantic: exactlyonce}`, "spec.semantic", []string{unsupported}},
	{"producer AtMostOnce with publish policy", `kind: Producer
spec: {topicRef: {name: t}, semantic: AtMostOnce, publish: {retries: 3}}`, "spec.publish", []string{"Forbidden", "publish applies only to AtLeastOnce and ExactlyOnce"}},
	{"producer ackTimeout 10ms", `kind: Producer
spec: {topicRef: {name: t}, publish: {ackTimeout: 10ms}}`, "spec.publish.ackTimeout", []string{"must be between 100ms and 5m"}},
	{"producer retryWait 10m", `kind: Producer
spec: {topicRef: {name: t}, publish: {retryWait: 10m}}`, "spec.publish.retryWait", []string{"must be at most 5m"}},
	{"producer negative retries", `kind: Producer
spec: {topicRef: {name: t}, publish: {retries: -1}}`, "spec.publish.retries", []string{tooSmall + " 0"}},
	{"producer subject under $SYS", `kind: Producer
spec: {topicRef: {name: t}, subjects: ["$SYS.REQ.SERVER.PING"]}`, "spec.subjects[0]", []string{notMatching}},
	{"producer bindingSecretName not a DNS name", `kind: Producer
spec: {topicRef: {name: t}, bindingSecretName: Bad_Name}`, "spec.bindingSecretName", []string{notMatching}},

	// Consumer.
	{"consumer without topicRef", `kind: Consumer
spec: {deliverPolicy: New}`, "spec.topicRef", []string{required}},
	{"consumer deliverPolicy not an enum value", `kind: Consumer
spec: {topicRef: {name: t}, deliverPolicy: First}`, "spec.deliverPolicy", []string{unsupported}},
	{"consumer AtMostOnce with ackWait", `kind: Consumer
spec: {topicRef: {name: t}, semantic: AtMostOnce, ackWait: 30s}`, "spec.ackWait", []string{"Forbidden", "ackWait does not apply to an AtMostOnce consumer"}},
	{"consumer AtMostOnce with maxDeliver", `kind: Consumer
spec: {topicRef: {name: t}, semantic: AtMostOnce, maxDeliver: 3}`, "spec.maxDeliver", []string{"Forbidden", "maxDeliver does not apply to an AtMostOnce consumer"}},
	{"consumer AtMostOnce with backoff", `kind: Consumer
spec: {topicRef: {name: t}, semantic: AtMostOnce, backoff: [1m]}`, "spec.backoff", []string{"Forbidden", "backoff does not apply to an AtMostOnce consumer"}},
	{"consumer AtMostOnce with maxAckPending", `kind: Consumer
spec: {topicRef: {name: t}, semantic: AtMostOnce, maxAckPending: 10}`, "spec.maxAckPending", []string{"Forbidden", "maxAckPending does not apply to an AtMostOnce consumer"}},
	{"producer gateway without ServiceAccounts", `kind: Producer
spec: {topicRef: {name: t}, gateway: {serviceAccounts: []}}`, "spec.gateway.serviceAccounts", []string{"should have at least 1 items"}},
	{"producer gateway ServiceAccount not a name", `kind: Producer
spec: {topicRef: {name: t}, gateway: {serviceAccounts: [Checkout_1]}}`, "spec.gateway.serviceAccounts[0]", []string{"should match"}},
	{"consumer ordered push with maxAckPending", `kind: Consumer
spec: {topicRef: {name: t}, maxAckPending: 5, push: {url: "https://crm.example.com/hook", ordered: true}}`, "spec.maxAckPending", []string{"an ordered push consumer has one message out at a time"}},
	{"consumer push url not http", `kind: Consumer
spec: {topicRef: {name: t}, push: {url: "ftp://crm.example.com"}}`, "spec.push.url", []string{"should match"}},
	{"consumer push signing Secret not a name", `kind: Consumer
spec: {topicRef: {name: t}, push: {url: "https://crm.example.com", signing: {secretRef: {name: Crm_Signing}}}}`, "spec.push.signing.secretRef.name", []string{"should match"}},
	{"consumer push signing without a Secret", `kind: Consumer
spec: {topicRef: {name: t}, push: {url: "https://crm.example.com", signing: {}}}`, "spec.push.signing.secretRef", []string{"Required value"}},
	{"consumer AtMostOnce with deadLetter", `kind: Consumer
spec: {topicRef: {name: t}, semantic: AtMostOnce, deadLetter: {topicRef: {name: dead}}}`, "spec.deadLetter", []string{"Forbidden", "deadLetter does not apply to an AtMostOnce consumer"}},
	{"consumer dead letters into its own Topic", `kind: Consumer
spec: {topicRef: {name: t}, deadLetter: {topicRef: {name: t}}}`, "spec.deadLetter.topicRef.name", []string{"Invalid", "a Topic cannot take its own dead letters"}},
	{"consumer deadLetter without a Topic", `kind: Consumer
spec: {topicRef: {name: t}, deadLetter: {}}`, "spec.deadLetter.topicRef", []string{required}},
	{"consumer backoff as long as maxDeliver", `kind: Consumer
spec: {topicRef: {name: t}, maxDeliver: 2, backoff: [1m, 2m]}`, "spec.backoff", []string{"backoff must have fewer entries than maxDeliver"}},
	{"consumer backoff longer than maxDeliver", `kind: Consumer
spec: {topicRef: {name: t}, maxDeliver: 2, backoff: [1m, 2m, 4m]}`, "spec.backoff", []string{"fewer entries than maxDeliver"}},
	{"consumer maxDeliver 0", `kind: Consumer
spec: {topicRef: {name: t}, maxDeliver: 0}`, "spec.maxDeliver", []string{tooSmall + " 1"}},
	{"consumer maxAckPending 0", `kind: Consumer
spec: {topicRef: {name: t}, maxAckPending: 0}`, "spec.maxAckPending", []string{tooSmall + " 1"}},
	{"consumer ackWait 1ms", `kind: Consumer
spec: {topicRef: {name: t}, ackWait: 1ms}`, "spec.ackWait", []string{"must be between 1s and 12h"}},
	{"consumer ackWait 13h", `kind: Consumer
spec: {topicRef: {name: t}, ackWait: 13h}`, "spec.ackWait", []string{"must be between 1s and 12h"}},
	{"consumer ackWait in words", `kind: Consumer
spec: {topicRef: {name: t}, ackWait: 5 minutes}`, "spec.ackWait", []string{notMatching}},
	{"consumer backoff entry under 1s", `kind: Consumer
spec: {topicRef: {name: t}, backoff: [1m, 500ms]}`, "spec.backoff[1]", []string{"must be between 1s and 12h"}},
	{"consumer backoff entry not a duration", `kind: Consumer
spec: {topicRef: {name: t}, backoff: [1m, soon]}`, "spec.backoff[1]", []string{notMatching}},
	{"consumer durableName with a dot", `kind: Consumer
spec: {topicRef: {name: t}, durableName: orders.v1}`, "spec.durableName", []string{notMatching}},
	{"consumer durableName empty", `kind: Consumer
spec: {topicRef: {name: t}, durableName: ""}`, "spec.durableName", nil},
	{"consumer filterSubject wildcard not last", `kind: Consumer
spec: {topicRef: {name: t}, filterSubjects: ["a.>.b"]}`, "spec.filterSubjects[0]", []string{notMatching}},
	{"consumer bindingSecretName not a DNS name", `kind: Consumer
spec: {topicRef: {name: t}, bindingSecretName: Bad_Name}`, "spec.bindingSecretName", []string{notMatching}},
}

// An invalid update is a valid object, the spec it is changed to, and the
// field the refusal must name.
type invalidUpdate struct {
	name          string
	before, after string
	field         string
	msg           []string
}

var invalidUpdates = []invalidUpdate{
	{"topic storage Memory to File", `kind: Topic
spec: {semantic: AtMostOnce, storage: Memory}`, `kind: Topic
spec: {semantic: AtMostOnce, storage: File}`, "spec.storage", []string{"storage is immutable"}},
	{"topic storage removed falls back to File", `kind: Topic
spec: {semantic: AtMostOnce, storage: Memory}`, `kind: Topic
spec: {semantic: AtMostOnce}`, "spec.storage", []string{"storage is immutable"}},
	{"topic AtMostOnce on Memory raised to AtLeastOnce", `kind: Topic
spec: {semantic: AtMostOnce, storage: Memory}`, `kind: Topic
spec: {semantic: AtLeastOnce, storage: Memory}`, "spec.storage", []string{"Memory storage is only allowed"}},
	{"topic duplicateWindow raised past maxAge", `kind: Topic
spec: {semantic: ExactlyOnce, duplicateWindow: 2m, retention: {maxAge: 1h}}`, `kind: Topic
spec: {semantic: ExactlyOnce, duplicateWindow: 2h, retention: {maxAge: 1h}}`, "spec.duplicateWindow", []string{"must not be longer than retention.maxAge"}},
	{"producer topicRef changed", `kind: Producer
spec: {topicRef: {name: orders}}`, `kind: Producer
spec: {topicRef: {name: invoices}}`, "spec.topicRef", []string{"topicRef is immutable"}},
	{"consumer topicRef changed", `kind: Consumer
spec: {topicRef: {name: orders}}`, `kind: Consumer
spec: {topicRef: {name: invoices}}`, "spec.topicRef", []string{"topicRef is immutable"}},
	{"consumer durableName changed", `kind: Consumer
spec: {topicRef: {name: orders}, durableName: billing}`, `kind: Consumer
spec: {topicRef: {name: orders}, durableName: billing-v2}`, "spec.durableName", []string{"durableName is immutable"}},
	{"consumer durableName added", `kind: Consumer
spec: {topicRef: {name: orders}}`, `kind: Consumer
spec: {topicRef: {name: orders}, durableName: billing}`, "spec.durableName", []string{"cannot be added or removed"}},
	{"consumer durableName removed", `kind: Consumer
spec: {topicRef: {name: orders}, durableName: billing}`, `kind: Consumer
spec: {topicRef: {name: orders}}`, "spec.durableName", []string{"cannot be added or removed"}},
	{"consumer deliverPolicy changed", `kind: Consumer
spec: {topicRef: {name: orders}, deliverPolicy: All}`, `kind: Consumer
spec: {topicRef: {name: orders}, deliverPolicy: New}`, "spec.deliverPolicy", []string{"deliverPolicy is immutable"}},
	{"consumer semantic AtMostOnce to AtLeastOnce", `kind: Consumer
spec: {topicRef: {name: orders}, semantic: AtMostOnce}`, `kind: Consumer
spec: {topicRef: {name: orders}, semantic: AtLeastOnce}`, "spec.semantic", []string{"changed between AtMostOnce and an acknowledged semantic"}},
	{"consumer semantic AtLeastOnce to AtMostOnce", `kind: Consumer
spec: {topicRef: {name: orders}, semantic: AtLeastOnce}`, `kind: Consumer
spec: {topicRef: {name: orders}, semantic: AtMostOnce}`, "spec.semantic", []string{"changed between AtMostOnce"}},
	{"consumer semantic ExactlyOnce to AtMostOnce", `kind: Consumer
spec: {topicRef: {name: orders}, semantic: ExactlyOnce}`, `kind: Consumer
spec: {topicRef: {name: orders}, semantic: AtMostOnce}`, "spec.semantic", []string{"changed between AtMostOnce"}},
	{"consumer semantic removed (would inherit another ack policy)", `kind: Consumer
spec: {topicRef: {name: orders}, semantic: AtMostOnce}`, `kind: Consumer
spec: {topicRef: {name: orders}}`, "spec.semantic", []string{"cannot be added, removed"}},
	{"consumer semantic added after creation", `kind: Consumer
spec: {topicRef: {name: orders}}`, `kind: Consumer
spec: {topicRef: {name: orders}, semantic: AtMostOnce}`, "spec.semantic", []string{"cannot be added, removed"}},
	{"consumer backoff grown to maxDeliver", `kind: Consumer
spec: {topicRef: {name: orders}, maxDeliver: 4, backoff: [1m, 2m]}`, `kind: Consumer
spec: {topicRef: {name: orders}, maxDeliver: 4, backoff: [1m, 2m, 4m, 8m]}`, "spec.backoff", []string{"fewer entries than maxDeliver"}},
}

// TestRefused creates or updates each bad manifest against the real API
// server and checks that it is refused with an error naming the field.
func TestRefused(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	refused, total := 0, len(invalidCreates)+len(invalidUpdates)

	for _, c := range invalidCreates {
		t.Run("create/"+c.name, func(t *testing.T) {
			err := k8s.Create(ctx, manifest(t, ns, c.yaml), strict)
			if err := refusedAt(err, c.field, c.msg...); err != nil {
				t.Fatal(err)
			}
			t.Log(err)
			refused++
		})
	}

	for _, c := range invalidUpdates {
		t.Run("update/"+c.name, func(t *testing.T) {
			obj := manifest(t, ns, c.before)
			if err := k8s.Create(ctx, obj, strict); err != nil {
				t.Fatalf("creating the valid object: %v", err)
			}
			obj.Object["spec"] = manifest(t, ns, c.after).Object["spec"]
			err := k8s.Update(ctx, obj, strict)
			if err := refusedAt(err, c.field, c.msg...); err != nil {
				t.Fatal(err)
			}
			t.Log(err)
			refused++
		})
	}

	t.Logf("%d of %d invalid creates and updates refused with the expected field path (%d creates, %d updates)",
		refused, total, len(invalidCreates), len(invalidUpdates))
}
