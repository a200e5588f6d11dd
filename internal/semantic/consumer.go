package semantic

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// Defaults of a Consumer's acknowledgement settings.
const (
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 1000
	// defaultBackoffSteps is how many times the default backoff doubles ackWait.
	defaultBackoffSteps = 3
)

// Consumer compiles a Consumer into its durable pull consumer on the Topic's
// stream. sem is the resolved semantic (see Resolve). Filter subjects must
// lie inside the Topic's subjects; otherwise a *RuleError names the field.
func Consumer(t *hubflowv1.Topic, c *hubflowv1.Consumer, sem hubflowv1.DeliverySemantic) (jetstream.ConsumerConfig, error) {
	topicSubjects := TopicSubjects(t)
	for i, f := range c.Spec.FilterSubjects {
		if !CoveredByAny(topicSubjects, f) {
			return jetstream.ConsumerConfig{}, &RuleError{
				Reason:  ReasonSubjectOutsideTopic,
				Field:   fmt.Sprintf("spec.filterSubjects[%d]", i),
				Message: fmt.Sprintf("%q is not inside the Topic's subjects %v", f, topicSubjects),
			}
		}
	}
	durable := DurableName(c)
	cfg := jetstream.ConsumerConfig{
		Durable:        durable,
		Description:    "hubflow Consumer " + Owner(c.Namespace, c.Name),
		DeliverPolicy:  deliverPolicy(c.Spec.DeliverPolicy),
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		FilterSubjects: append([]string(nil), c.Spec.FilterSubjects...),
		MaxDeliver:     unlimited,
		Metadata:       map[string]string{OwnerKey: Owner(c.Namespace, c.Name)},
	}
	if sem == hubflowv1.AtMostOnce {
		// Nothing is acknowledged, so nothing is ever redelivered.
		cfg.AckPolicy = jetstream.AckNonePolicy
		return cfg, nil
	}
	cfg.AckPolicy = jetstream.AckExplicitPolicy
	cfg.AckWait = AckWait(c)
	cfg.MaxAckPending = DefaultMaxAckPending
	if c.Spec.MaxAckPending != nil {
		cfg.MaxAckPending = int(*c.Spec.MaxAckPending)
	}
	if c.Spec.Push != nil && c.Spec.Push.Ordered {
		// One message out at a time, whichever gateway replica pulls it:
		// the next is handed out only once this one is acknowledged.
		cfg.MaxAckPending = 1
	}
	if c.Spec.MaxDeliver != nil {
		cfg.MaxDeliver = int(*c.Spec.MaxDeliver)
	}
	cfg.BackOff = backoff(cfg.AckWait, c.Spec.Backoff, cfg.MaxDeliver)
	return cfg, nil
}

// AckWait is the Consumer's first acknowledgement wait, default applied.
func AckWait(c *hubflowv1.Consumer) time.Duration {
	if c.Spec.AckWait != nil {
		return c.Spec.AckWait.Duration
	}
	return DefaultAckWait
}

// backoff is the server's BackOff list. The server uses BackOff[0] in place
// of AckWait, so hubflow's API makes ackWait the first entry and backoff the
// waits after it: ackWait always means what it says. Undeclared, ackWait
// doubles defaultBackoffSteps times; the last wait repeats. A bounded
// maxDeliver caps the list, since the server refuses more waits than
// deliveries.
func backoff(ackWait time.Duration, declared []metav1.Duration, maxDeliver int) []time.Duration {
	waits := []time.Duration{ackWait}
	if len(declared) > 0 {
		for _, d := range declared {
			waits = append(waits, d.Duration)
		}
	} else {
		for i, w := 0, ackWait; i < defaultBackoffSteps; i++ {
			w *= 2
			waits = append(waits, w)
		}
	}
	if maxDeliver > 0 && len(waits) > maxDeliver {
		waits = waits[:maxDeliver]
	}
	if len(waits) == 1 {
		return nil // a single wait is just AckWait
	}
	return waits
}

func deliverPolicy(p hubflowv1.DeliverPolicy) jetstream.DeliverPolicy {
	switch p {
	case hubflowv1.DeliverNew:
		return jetstream.DeliverNewPolicy
	case hubflowv1.DeliverLast:
		return jetstream.DeliverLastPolicy
	case hubflowv1.DeliverLastPerSubject:
		return jetstream.DeliverLastPerSubjectPolicy
	}
	return jetstream.DeliverAllPolicy
}

// Undeliverable says, for a Consumer's status, what happens to a message
// that is never acknowledged.
func Undeliverable(stream string, cfg jetstream.ConsumerConfig) string {
	switch {
	case cfg.AckPolicy == jetstream.AckNonePolicy:
		return "never redelivered: an AtMostOnce consumer does not acknowledge, so a message lost in processing stays lost"
	case cfg.MaxDeliver <= 0:
		return "redelivered until acknowledged or terminated by the client; nothing is dropped"
	default:
		return fmt.Sprintf("dropped by this consumer after %d deliveries (it stays in the stream); the server raises the advisory $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s",
			cfg.MaxDeliver, stream, cfg.Durable)
	}
}
