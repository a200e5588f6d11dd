package semantic

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// Defaults of a Producer's publish policy.
const (
	DefaultAckTimeout = 5 * time.Second
	DefaultRetries    = 5
	DefaultRetryWait  = 500 * time.Millisecond
)

// ProducerPolicy is what a producer's client must do to keep its semantic.
// It is written into the producer's binding.
type ProducerPolicy struct {
	Semantic hubflowv1.DeliverySemantic
	// Subjects the producer may publish on.
	Subjects []string
	// WaitForAck: publish through JetStream and wait for the stream's ack.
	// False means a fire-and-forget core publish (AtMostOnce).
	WaitForAck bool
	// MessageID: give every logical message a stable Nats-Msg-Id and keep it
	// on every retry, so the stream drops duplicates (ExactlyOnce).
	MessageID  bool
	AckTimeout time.Duration
	Retries    int
	RetryWait  time.Duration
	// DuplicateWindow is how long the stream drops a repeated message id.
	DuplicateWindow time.Duration
}

// RetryHorizon is the longest a publish may keep retrying one message. With
// message ids, every retry must land inside the duplicate window.
func (p ProducerPolicy) RetryHorizon() time.Duration {
	if !p.WaitForAck {
		return 0
	}
	return time.Duration(p.Retries+1)*p.AckTimeout + time.Duration(p.Retries)*p.RetryWait
}

// Producer compiles a Producer's client policy against its Topic. sem is the
// resolved semantic (see Resolve). Its subjects must lie inside the Topic's,
// and for ExactlyOnce its retry horizon inside the Topic's duplicate window.
func Producer(t *hubflowv1.Topic, p *hubflowv1.Producer, sem hubflowv1.DeliverySemantic) (ProducerPolicy, error) {
	topicSubjects := TopicSubjects(t)
	subjects := topicSubjects
	if len(p.Spec.Subjects) > 0 {
		subjects = append([]string(nil), p.Spec.Subjects...)
		for i, s := range subjects {
			if !CoveredByAny(topicSubjects, s) {
				return ProducerPolicy{}, &RuleError{
					Reason:  ReasonSubjectOutsideTopic,
					Field:   fmt.Sprintf("spec.subjects[%d]", i),
					Message: fmt.Sprintf("%q is not inside the Topic's subjects %v", s, topicSubjects),
				}
			}
		}
	}
	policy := ProducerPolicy{Semantic: sem, Subjects: subjects}
	if sem == hubflowv1.AtMostOnce {
		return policy, nil
	}
	policy.WaitForAck = true
	policy.AckTimeout, policy.Retries, policy.RetryWait = publishSettings(p)
	if sem == hubflowv1.ExactlyOnce {
		policy.MessageID = true
		policy.DuplicateWindow = DuplicateWindow(t)
		if h := policy.RetryHorizon(); h > policy.DuplicateWindow {
			return ProducerPolicy{}, &RuleError{
				Reason: ReasonRetryHorizonTooLong,
				Field:  "spec.publish",
				Message: fmt.Sprintf("retries may go on for %s, longer than the Topic's %s duplicate window, so a late retry would be stored twice: lower publish.retries or publish.ackTimeout, or raise the Topic's duplicateWindow",
					h, policy.DuplicateWindow),
			}
		}
	}
	return policy, nil
}

// AckMode is how a consumer's client acknowledges a message.
type AckMode string

const (
	// AckNone: the client never acknowledges (AtMostOnce).
	AckNone AckMode = "None"
	// AckAfterProcessing: ack once the handler succeeded (AtLeastOnce).
	AckAfterProcessing AckMode = "Ack"
	// DoubleAckAfterProcessing: ack after an idempotent handler and wait for
	// the server to confirm the ack (ExactlyOnce).
	DoubleAckAfterProcessing AckMode = "DoubleAck"
)

// ConsumerPolicy is what a consumer's client must do to keep its semantic.
// It is written into the consumer's binding.
type ConsumerPolicy struct {
	Semantic hubflowv1.DeliverySemantic
	Ack      AckMode
	// AckWait is how long the client has before the server redelivers; long
	// work must signal progress (InProgress) within it.
	AckWait time.Duration
	// RedeliveryDelays are the waits a failed message is naked with, by
	// delivery attempt; the last repeats.
	RedeliveryDelays []time.Duration
	// MaxDeliver is 0 when unlimited.
	MaxDeliver int
	// IdempotencyKey: the handler gets a stable key (message id, else stream
	// sequence and stored time) to make its side effect idempotent.
	IdempotencyKey bool
}

// ConsumerClientPolicy derives the client policy from a compiled consumer
// (see Consumer), so the client and the server always agree.
func ConsumerClientPolicy(sem hubflowv1.DeliverySemantic, cfg jetstream.ConsumerConfig) ConsumerPolicy {
	if sem == hubflowv1.AtMostOnce {
		return ConsumerPolicy{Semantic: sem, Ack: AckNone}
	}
	delays := append([]time.Duration(nil), cfg.BackOff...)
	if len(delays) == 0 {
		delays = []time.Duration{cfg.AckWait}
	}
	policy := ConsumerPolicy{
		Semantic:         sem,
		Ack:              AckAfterProcessing,
		AckWait:          cfg.AckWait,
		RedeliveryDelays: delays,
		MaxDeliver:       max(cfg.MaxDeliver, 0),
	}
	if sem == hubflowv1.ExactlyOnce {
		policy.Ack = DoubleAckAfterProcessing
		policy.IdempotencyKey = true
	}
	return policy
}

// ProducerRetryHorizon is how long p's client may retry one publish,
// whatever its Topic says: what the stream's duplicate window must cover
// while p's workloads still run with a binding issued earlier.
func ProducerRetryHorizon(p *hubflowv1.Producer) time.Duration {
	policy := ProducerPolicy{WaitForAck: true}
	policy.AckTimeout, policy.Retries, policy.RetryWait = publishSettings(p)
	return policy.RetryHorizon()
}

// publishSettings are p's declared publish settings, defaults filled in.
func publishSettings(p *hubflowv1.Producer) (ackTimeout time.Duration, retries int, retryWait time.Duration) {
	ackTimeout, retries, retryWait = DefaultAckTimeout, DefaultRetries, DefaultRetryWait
	if pub := p.Spec.Publish; pub != nil {
		if pub.AckTimeout != nil {
			ackTimeout = pub.AckTimeout.Duration
		}
		if pub.Retries != nil {
			retries = int(*pub.Retries)
		}
		if pub.RetryWait != nil {
			retryWait = pub.RetryWait.Duration
		}
	}
	return ackTimeout, retries, retryWait
}

// HeldDuplicateWindow is the duplicate window a stream gets. A window
// declared below a registered producer's retry horizon would let that
// producer's late retries be stored twice, so the stream keeps what it has,
// down to the largest horizon: a shrink stops there. It never grows past
// what the stream already has on a producer's behalf; such a producer is
// refused instead (see Producer).
func HeldDuplicateWindow(declared, current, horizon time.Duration) time.Duration {
	return max(declared, min(current, horizon))
}

// Metadata keys of a stream whose duplicate window is held above the
// declared one: for which Producer, and, once that Producer is gone, until
// when. They let a held window outlive its Producer without a finalizer.
const (
	WindowHeldForKey   = "hubflow.io/duplicate-window-held-for"
	WindowHeldUntilKey = "hubflow.io/duplicate-window-held-until"
)

// WindowHold is the duplicate window a stream gets and why.
type WindowHold struct {
	Window time.Duration
	// Holder is the Producer the window is held above the declared one for.
	Holder string
	// Until is set while the window is held for a Holder that is gone: its
	// workloads may still publish with the binding they were given, with
	// credentials valid for up to the grace after its deletion.
	Until time.Time
}

// HoldWindow decides a stream's duplicate window from the declared one, the
// stream's current window and metadata, and the longest retry horizon of
// the registered ExactlyOnce Producers (holder's). A window held for a
// Producer is kept for grace after that Producer is gone, then shrinks to
// the declared one; a plain shrink no Producer needs goes through at once.
func HoldWindow(declared, current, horizon time.Duration, holder string, observed map[string]string, now time.Time, grace time.Duration) WindowHold {
	live := WindowHold{Window: HeldDuplicateWindow(declared, current, horizon)}
	if live.Window > declared {
		live.Holder = holder
	}
	gone := observed[WindowHeldForKey]
	if gone == "" || gone == holder || current <= live.Window {
		return live
	}
	until, err := time.Parse(time.RFC3339, observed[WindowHeldUntilKey])
	if err != nil {
		until = now.Add(grace).UTC().Truncate(time.Second)
	}
	if !now.Before(until) {
		return live
	}
	return WindowHold{Window: current, Holder: gone, Until: until}
}

// Record writes the hold into a stream's desired metadata.
func (h WindowHold) Record(metadata map[string]string) {
	if h.Holder != "" {
		metadata[WindowHeldForKey] = h.Holder
	}
	if !h.Until.IsZero() {
		metadata[WindowHeldUntilKey] = h.Until.Format(time.RFC3339)
	}
}
