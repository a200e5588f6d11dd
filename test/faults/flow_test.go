package faults

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testnats"
	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/hubflow"
)

// flow is one Topic with one Producer and one Consumer of a semantic,
// compiled the way the operator compiles them, and the bindings the
// operator would hand the two workloads.
type flow struct {
	sem      hubflowv1.DeliverySemantic
	stream   jetstream.StreamConfig
	durable  jetstream.ConsumerConfig
	producer binding.Binding
	consumer binding.Binding
	// producerPolicy is the producer's compiled policy (its permissions
	// derive from it).
	producerPolicy semantic.ProducerPolicy
	noDedup        bool // sabotage: ExactlyOnce consumers without their dedup record
	// fileDedup gives the consumers of every acknowledging semantic a
	// FileDedup (ExactlyOnce always has one).
	fileDedup bool
	// Extra options for the producer and the consumer instances (a creds
	// file, for example).
	producerOpts []hubflow.ProducerOption
	consumerOpts []hubflow.ConsumerOption
	// account is the JetStream account of the flow: the global one of a
	// hub without auth unless set.
	account string
}

// tuning is what a case changes in a flow.
type tuning struct {
	replicas        int32
	storage         hubflowv1.StorageType // the semantic's own when empty
	duplicateWindow time.Duration         // ExactlyOnce; the default when zero
	ackTimeout      time.Duration
	retries         int32
	retryWait       time.Duration
	ackWait         time.Duration
	inbox           bool // give each binding the inbox prefix its credentials allow
}

// faultsTuning is the fault suite's own: an R3 Topic on the cluster.
var faultsTuning = tuning{replicas: 3, ackTimeout: ackTimeout, retries: retries, retryWait: retryWait, ackWait: ackWait}

// Short waits keep a 10,000-message run with faults within a minute: a
// message whose ack was lost comes back after 2s, a publish is retried
// after 2s without an ack.
const (
	ackWait    = 2 * time.Second
	ackTimeout = 2 * time.Second
	retries    = 30
	retryWait  = 250 * time.Millisecond
)

func newFlow(sem hubflowv1.DeliverySemantic, url string) (*flow, error) {
	return newTunedFlow(sem, url, faultsTuning)
}

func newTunedFlow(sem hubflowv1.DeliverySemantic, url string, tu tuning) (*flow, error) {
	name := "faults-" + strings.ToLower(string(sem))
	topic := &hubflowv1.Topic{
		ObjectMeta: metav1.ObjectMeta{Namespace: "faults", Name: name},
		Spec:       hubflowv1.TopicSpec{Semantic: sem, Replicas: tu.replicas, Storage: hubflowv1.FileStorage},
	}
	if sem == hubflowv1.AtMostOnce {
		topic.Spec.Storage = hubflowv1.MemoryStorage
	}
	if tu.storage != "" {
		topic.Spec.Storage = tu.storage
	}
	if tu.duplicateWindow > 0 {
		topic.Spec.DuplicateWindow = &metav1.Duration{Duration: tu.duplicateWindow}
	}
	prod := &hubflowv1.Producer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "faults", Name: name + "-producer"},
		Spec:       hubflowv1.ProducerSpec{TopicRef: hubflowv1.TopicReference{Name: name}},
	}
	cons := &hubflowv1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "faults", Name: name + "-consumer"},
		Spec:       hubflowv1.ConsumerSpec{TopicRef: hubflowv1.TopicReference{Name: name}, DeliverPolicy: hubflowv1.DeliverAll},
	}
	if sem != hubflowv1.AtMostOnce {
		r := tu.retries
		prod.Spec.Publish = &hubflowv1.PublishPolicy{
			AckTimeout: &metav1.Duration{Duration: tu.ackTimeout}, Retries: &r, RetryWait: &metav1.Duration{Duration: tu.retryWait},
		}
		cons.Spec.AckWait = &metav1.Duration{Duration: tu.ackWait}
	}
	f := &flow{sem: sem, stream: semantic.Stream(topic)}
	var err error
	if f.durable, err = semantic.Consumer(topic, cons, sem); err != nil {
		return nil, err
	}
	pp, err := semantic.Producer(topic, prod, sem)
	if err != nil {
		return nil, err
	}
	f.producerPolicy = pp
	cp := semantic.ConsumerClientPolicy(sem, f.durable)
	pb := producerBinding(url, f.stream.Name, pp)
	cb := consumerBinding(url, f.stream.Name, f.durable.Durable, cp)
	if tu.inbox {
		pb.Inbox = semantic.InboxPrefix(semantic.RoleProducer, prod.Namespace, prod.Name)
		cb.Inbox = semantic.InboxPrefix(semantic.RoleConsumer, cons.Namespace, cons.Name)
	}
	// Through the Secret's encoding and back, as a workload reads them.
	if f.producer, err = binding.Decode(pb.Data()); err != nil {
		return nil, fmt.Errorf("producer binding: %w", err)
	}
	if f.consumer, err = binding.Decode(cb.Data()); err != nil {
		return nil, fmt.Errorf("consumer binding: %w", err)
	}
	return f, nil
}

// create makes the stream and the durable, retrying while the cluster's
// meta leader settles, and waits until every node routes the producer's
// subject to the stream: a core publish (AtMostOnce) sent to a node that
// has not heard of the stream yet is dropped, which is not the fault under
// test.
func (f *flow) create(ctx context.Context, js jetstream.JetStream, c *testnats.Cluster) error {
	err := retry(ctx, func() error {
		if _, err := js.CreateOrUpdateStream(ctx, f.stream); err != nil {
			return err
		}
		_, err := js.CreateOrUpdateConsumer(ctx, f.stream.Name, f.durable)
		return err
	})
	if err != nil {
		return err
	}
	subject := f.producer.Subjects[0]
	return retry(ctx, func() error {
		for _, n := range c.Nodes {
			acc := n.Server().GlobalAccount()
			if f.account != "" {
				var err error
				if acc, err = n.Server().LookupAccount(f.account); err != nil {
					return err
				}
			}
			if !acc.SubscriptionInterest(subject) {
				return fmt.Errorf("%s does not route %s yet", n.Server().Name(), subject)
			}
		}
		return nil
	})
}

func producerBinding(url, stream string, p semantic.ProducerPolicy) binding.Binding {
	return binding.Binding{
		Role: binding.RoleProducer, URL: url, Stream: stream, Subjects: p.Subjects, Semantic: string(p.Semantic),
		WaitForAck: p.WaitForAck, MessageID: p.MessageID, AckTimeout: p.AckTimeout,
		Retries: p.Retries, RetryWait: p.RetryWait, DuplicateWindow: p.DuplicateWindow,
	}
}

func consumerBinding(url, stream, durable string, p semantic.ConsumerPolicy) binding.Binding {
	return binding.Binding{
		Role: binding.RoleConsumer, URL: url, Stream: stream, Durable: durable, Semantic: string(p.Semantic),
		Ack: string(p.Ack), AckWait: p.AckWait, RedeliveryDelays: p.RedeliveryDelays,
		MaxDeliver: p.MaxDeliver, IdempotencyKey: p.IdempotencyKey,
	}
}

// retry calls fn until it succeeds or ctx ends.
func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
