package semantic

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

func topic(sem hubflowv1.DeliverySemantic, mutate ...func(*hubflowv1.TopicSpec)) *hubflowv1.Topic {
	t := &hubflowv1.Topic{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "payments"},
		Spec: hubflowv1.TopicSpec{
			Semantic: sem, Storage: hubflowv1.FileStorage, Replicas: 1,
			DeletionPolicy: hubflowv1.RetainOnDelete,
		},
	}
	for _, m := range mutate {
		m(&t.Spec)
	}
	return t
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
func ptr[T any](v T) *T                    { return &v }

func TestStreamFollowsTheContract(t *testing.T) {
	tests := []struct {
		name  string
		topic *hubflowv1.Topic
		want  func(*jetstream.StreamConfig)
	}{
		{
			name:  "AtMostOnce discards old and keeps no duplicate window",
			topic: topic(hubflowv1.AtMostOnce, func(s *hubflowv1.TopicSpec) { s.Storage = hubflowv1.MemoryStorage }),
			want: func(c *jetstream.StreamConfig) {
				c.Storage, c.Discard = jetstream.MemoryStorage, jetstream.DiscardOld
			},
		},
		{
			name:  "AtLeastOnce discards new so producers see a full stream",
			topic: topic(hubflowv1.AtLeastOnce),
			want:  func(c *jetstream.StreamConfig) {},
		},
		{
			name:  "ExactlyOnce gets the default 2m duplicate window",
			topic: topic(hubflowv1.ExactlyOnce),
			want:  func(c *jetstream.StreamConfig) { c.Duplicates = 2 * time.Minute },
		},
		{
			name: "ExactlyOnce with declared window and limits",
			topic: topic(hubflowv1.ExactlyOnce, func(s *hubflowv1.TopicSpec) {
				s.DuplicateWindow = dur(5 * time.Minute)
				s.Replicas = 3
				s.Retention = &hubflowv1.RetentionLimits{
					MaxAge: dur(168 * time.Hour), MaxBytes: ptr(resource.MustParse("10Gi")),
					MaxMessages: ptr(int64(1e6)), MaxMessageSize: ptr(resource.MustParse("1Mi")),
				}
			}),
			want: func(c *jetstream.StreamConfig) {
				c.Duplicates, c.Replicas, c.MaxAge = 5*time.Minute, 3, 168*time.Hour
				c.MaxBytes, c.MaxMsgs, c.MaxMsgSize = 10<<30, 1e6, 1<<20
			},
		},
		{
			name:  "declared subjects replace the defaults",
			topic: topic(hubflowv1.AtLeastOnce, func(s *hubflowv1.TopicSpec) { s.Subjects = []string{"orders.*", "refunds.>"} }),
			want:  func(c *jetstream.StreamConfig) { c.Subjects = []string{"orders.*", "refunds.>"} },
		},
		{
			name:  "AtMostOnce may declare discard New",
			topic: topic(hubflowv1.AtMostOnce, func(s *hubflowv1.TopicSpec) { s.Discard = hubflowv1.DiscardNew }),
			want:  func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardNew },
		},
		{
			name:  "an unset semantic is the API default AtLeastOnce",
			topic: topic(""),
			want:  func(c *jetstream.StreamConfig) {},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := jetstream.StreamConfig{
				Name: "shop_payments", Description: "hubflow Topic shop/payments",
				Subjects:  []string{"shop.payments", "shop.payments.>"},
				Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: 1,
				MaxMsgs: -1, MaxBytes: -1, MaxMsgSize: -1, Discard: jetstream.DiscardNew,
				Metadata: map[string]string{OwnerKey: "shop/payments"},
			}
			tc.want(&want)
			if got := Stream(tc.topic); !reflect.DeepEqual(got, want) {
				t.Errorf("Stream() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestStreamNamesAreDistinct(t *testing.T) {
	// Dots in a Topic name become underscores; neither a namespace nor a name
	// can hold an underscore, so these never collide.
	names := map[string]string{}
	for _, nn := range [][2]string{{"a", "b.c"}, {"a", "b-c"}, {"a-b", "c"}, {"a", "b"}, {"ab", "c"}} {
		got := StreamName(nn[0], nn[1])
		if prev, ok := names[got]; ok {
			t.Fatalf("%v and %s share stream %q", nn, prev, got)
		}
		names[got] = nn[0] + "/" + nn[1]
	}
	if got := StreamName("a", "b.c"); got != "a_b_c" {
		t.Errorf("StreamName = %q", got)
	}
}

func consumer(mutate ...func(*hubflowv1.ConsumerSpec)) *hubflowv1.Consumer {
	c := &hubflowv1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ledger"},
		Spec: hubflowv1.ConsumerSpec{
			TopicRef: hubflowv1.TopicReference{Name: "payments"}, DeliverPolicy: hubflowv1.DeliverAll,
		},
	}
	for _, m := range mutate {
		m(&c.Spec)
	}
	return c
}

func TestConsumerFollowsTheContract(t *testing.T) {
	base := func() jetstream.ConsumerConfig {
		return jetstream.ConsumerConfig{
			Durable: "ledger", Description: "hubflow Consumer shop/ledger",
			DeliverPolicy: jetstream.DeliverAllPolicy, ReplayPolicy: jetstream.ReplayInstantPolicy,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1,
			BackOff:       []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute},
			MaxAckPending: 1000, Metadata: map[string]string{OwnerKey: "shop/ledger"},
		}
	}
	tests := []struct {
		name     string
		sem      hubflowv1.DeliverySemantic
		consumer *hubflowv1.Consumer
		want     func(*jetstream.ConsumerConfig)
	}{
		{
			name: "AtMostOnce acknowledges nothing", sem: hubflowv1.AtMostOnce, consumer: consumer(),
			want: func(c *jetstream.ConsumerConfig) {
				c.AckPolicy, c.AckWait, c.BackOff, c.MaxAckPending = jetstream.AckNonePolicy, 0, nil, 0
			},
		},
		{
			name: "AtLeastOnce redelivers forever with a doubling backoff", sem: hubflowv1.AtLeastOnce,
			consumer: consumer(), want: func(c *jetstream.ConsumerConfig) {},
		},
		{
			name: "ExactlyOnce compiles like AtLeastOnce on the server", sem: hubflowv1.ExactlyOnce,
			consumer: consumer(), want: func(c *jetstream.ConsumerConfig) {},
		},
		{
			name: "declared ackWait starts the backoff", sem: hubflowv1.AtLeastOnce,
			consumer: consumer(func(s *hubflowv1.ConsumerSpec) {
				s.AckWait = dur(10 * time.Second)
				s.Backoff = []metav1.Duration{{Duration: time.Minute}, {Duration: 10 * time.Minute}}
				s.MaxAckPending = ptr(int32(50))
			}),
			want: func(c *jetstream.ConsumerConfig) {
				c.AckWait, c.MaxAckPending = 10*time.Second, 50
				c.BackOff = []time.Duration{10 * time.Second, time.Minute, 10 * time.Minute}
			},
		},
		{
			name: "a bounded maxDeliver caps the default backoff", sem: hubflowv1.AtLeastOnce,
			consumer: consumer(func(s *hubflowv1.ConsumerSpec) { s.MaxDeliver = ptr(int32(2)) }),
			want: func(c *jetstream.ConsumerConfig) {
				c.MaxDeliver, c.BackOff = 2, []time.Duration{30 * time.Second, time.Minute}
			},
		},
		{
			name: "maxDeliver 1 needs no backoff at all", sem: hubflowv1.AtLeastOnce,
			consumer: consumer(func(s *hubflowv1.ConsumerSpec) { s.MaxDeliver = ptr(int32(1)) }),
			want:     func(c *jetstream.ConsumerConfig) { c.MaxDeliver, c.BackOff = 1, nil },
		},
		{
			name: "durable name, deliver policy and filters", sem: hubflowv1.AtLeastOnce,
			consumer: consumer(func(s *hubflowv1.ConsumerSpec) {
				s.DurableName, s.DeliverPolicy = "ledger-v2", hubflowv1.DeliverNew
				s.FilterSubjects = []string{"shop.payments.eu"}
			}),
			want: func(c *jetstream.ConsumerConfig) {
				c.Durable, c.DeliverPolicy = "ledger-v2", jetstream.DeliverNewPolicy
				c.FilterSubjects = []string{"shop.payments.eu"}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := base()
			tc.want(&want)
			got, err := Consumer(topic(hubflowv1.ExactlyOnce), tc.consumer, tc.sem)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Consumer() =\n%+v\nwant\n%+v", got, want)
			}
			if len(got.BackOff) > 0 && got.BackOff[0] != got.AckWait {
				t.Errorf("BackOff[0] %s replaces AckWait %s on the server; they must agree", got.BackOff[0], got.AckWait)
			}
			if got.MaxDeliver > 0 && len(got.BackOff) > got.MaxDeliver {
				t.Errorf("server refuses %d backoff entries with maxDeliver %d", len(got.BackOff), got.MaxDeliver)
			}
		})
	}
}

func TestFilterSubjectsMustLieInsideTheTopic(t *testing.T) {
	c := consumer(func(s *hubflowv1.ConsumerSpec) { s.FilterSubjects = []string{"shop.payments.eu", "shop.orders"} })
	_, err := Consumer(topic(hubflowv1.AtLeastOnce), c, hubflowv1.AtLeastOnce)
	var rule *RuleError
	if !errors.As(err, &rule) || rule.Reason != ReasonSubjectOutsideTopic || rule.Field != "spec.filterSubjects[1]" {
		t.Fatalf("got %v, want a %s error on spec.filterSubjects[1]", err, ReasonSubjectOutsideTopic)
	}
}

func TestResolve(t *testing.T) {
	sems := []hubflowv1.DeliverySemantic{hubflowv1.AtMostOnce, hubflowv1.AtLeastOnce, hubflowv1.ExactlyOnce}
	for _, topicSem := range sems {
		if got, err := Resolve(topicSem, nil); err != nil || got != topicSem {
			t.Errorf("Resolve(%s, nil) = %s, %v; want the topic's", topicSem, got, err)
		}
		for _, declared := range sems {
			got, err := Resolve(topicSem, &declared)
			stronger := declared.Strength() > topicSem.Strength()
			var rule *RuleError
			switch {
			case stronger && (!errors.As(err, &rule) || rule.Reason != ReasonSemanticStrongerThanTopic || rule.Field != "spec.semantic"):
				t.Errorf("Resolve(%s, %s) = %v; want refused as stronger", topicSem, declared, err)
			case !stronger && (err != nil || got != declared):
				t.Errorf("Resolve(%s, %s) = %s, %v; want %s", topicSem, declared, got, err, declared)
			}
		}
	}
}

func TestEffective(t *testing.T) {
	tests := []struct {
		consumer  hubflowv1.DeliverySemantic
		producers []hubflowv1.DeliverySemantic
		want      hubflowv1.DeliverySemantic
	}{
		{hubflowv1.ExactlyOnce, nil, hubflowv1.ExactlyOnce},
		{hubflowv1.ExactlyOnce, []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce}, hubflowv1.ExactlyOnce},
		{hubflowv1.ExactlyOnce, []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce, hubflowv1.AtLeastOnce}, hubflowv1.AtLeastOnce},
		{hubflowv1.AtLeastOnce, []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce}, hubflowv1.AtLeastOnce},
		{hubflowv1.ExactlyOnce, []hubflowv1.DeliverySemantic{hubflowv1.AtMostOnce}, hubflowv1.AtMostOnce},
		{hubflowv1.AtMostOnce, []hubflowv1.DeliverySemantic{hubflowv1.ExactlyOnce}, hubflowv1.AtMostOnce},
	}
	for _, tc := range tests {
		if got := Effective(tc.consumer, tc.producers); got != tc.want {
			t.Errorf("Effective(%s, %v) = %s, want %s", tc.consumer, tc.producers, got, tc.want)
		}
	}
}

func producer(mutate ...func(*hubflowv1.ProducerSpec)) *hubflowv1.Producer {
	p := &hubflowv1.Producer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"},
		Spec:       hubflowv1.ProducerSpec{TopicRef: hubflowv1.TopicReference{Name: "payments"}},
	}
	for _, m := range mutate {
		m(&p.Spec)
	}
	return p
}

func TestProducerPolicy(t *testing.T) {
	all := []string{"shop.payments", "shop.payments.>"}
	tests := []struct {
		name     string
		topic    *hubflowv1.Topic
		producer *hubflowv1.Producer
		sem      hubflowv1.DeliverySemantic
		want     ProducerPolicy
		reason   string
	}{
		{
			name: "AtMostOnce fires and forgets", topic: topic(hubflowv1.AtLeastOnce), producer: producer(),
			sem: hubflowv1.AtMostOnce, want: ProducerPolicy{Semantic: hubflowv1.AtMostOnce, Subjects: all},
		},
		{
			name: "AtLeastOnce waits for acks and retries without ids", topic: topic(hubflowv1.ExactlyOnce),
			producer: producer(), sem: hubflowv1.AtLeastOnce,
			want: ProducerPolicy{Semantic: hubflowv1.AtLeastOnce, Subjects: all, WaitForAck: true,
				AckTimeout: 5 * time.Second, Retries: 5, RetryWait: 500 * time.Millisecond},
		},
		{
			name: "ExactlyOnce sends message ids inside the window", topic: topic(hubflowv1.ExactlyOnce),
			producer: producer(func(s *hubflowv1.ProducerSpec) { s.Subjects = []string{"shop.payments.eu"} }),
			sem:      hubflowv1.ExactlyOnce,
			want: ProducerPolicy{Semantic: hubflowv1.ExactlyOnce, Subjects: []string{"shop.payments.eu"},
				WaitForAck: true, MessageID: true, AckTimeout: 5 * time.Second, Retries: 5,
				RetryWait: 500 * time.Millisecond, DuplicateWindow: 2 * time.Minute},
		},
		{
			name: "ExactlyOnce retries longer than the window are refused", topic: topic(hubflowv1.ExactlyOnce),
			producer: producer(func(s *hubflowv1.ProducerSpec) {
				s.Publish = &hubflowv1.PublishPolicy{AckTimeout: dur(time.Minute), Retries: ptr(int32(3))}
			}),
			sem: hubflowv1.ExactlyOnce, reason: ReasonRetryHorizonTooLong,
		},
		{
			name: "subjects outside the topic are refused", topic: topic(hubflowv1.AtLeastOnce),
			producer: producer(func(s *hubflowv1.ProducerSpec) { s.Subjects = []string{"shop.orders.>"} }),
			sem:      hubflowv1.AtLeastOnce, reason: ReasonSubjectOutsideTopic,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Producer(tc.topic, tc.producer, tc.sem)
			if tc.reason != "" {
				var rule *RuleError
				if !errors.As(err, &rule) || rule.Reason != tc.reason {
					t.Fatalf("got %v, want reason %s", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Producer() =\n%+v\nwant\n%+v", got, tc.want)
			}
			if got.MessageID && got.RetryHorizon() > got.DuplicateWindow {
				t.Errorf("retry horizon %s exceeds the duplicate window %s", got.RetryHorizon(), got.DuplicateWindow)
			}
		})
	}
}

func TestConsumerClientPolicy(t *testing.T) {
	for _, sem := range []hubflowv1.DeliverySemantic{hubflowv1.AtMostOnce, hubflowv1.AtLeastOnce, hubflowv1.ExactlyOnce} {
		cfg, err := Consumer(topic(hubflowv1.ExactlyOnce), consumer(), sem)
		if err != nil {
			t.Fatal(err)
		}
		p := ConsumerClientPolicy(sem, cfg)
		wantAck := map[hubflowv1.DeliverySemantic]AckMode{
			hubflowv1.AtMostOnce: AckNone, hubflowv1.AtLeastOnce: AckAfterProcessing, hubflowv1.ExactlyOnce: DoubleAckAfterProcessing,
		}[sem]
		if p.Ack != wantAck || p.IdempotencyKey != (sem == hubflowv1.ExactlyOnce) {
			t.Errorf("%s: policy %+v, want ack %s", sem, p, wantAck)
		}
		if sem != hubflowv1.AtMostOnce && (p.AckWait != cfg.AckWait || !reflect.DeepEqual(p.RedeliveryDelays, cfg.BackOff)) {
			t.Errorf("%s: client waits %v/%v disagree with the server's %v/%v", sem, p.AckWait, p.RedeliveryDelays, cfg.AckWait, cfg.BackOff)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		pattern, sub string
		want         bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.*", "a.*", true},
		{"a.*", "a.b.c", false},
		{"a.*", "a.>", false},
		{"a.>", "a.b.c", true},
		{"a.>", "a.*", true},
		{"a.>", "a.>", true},
		{"a.>", "a", false},
		{"a.b", "a.*", false},
		{"a.b.>", "a.b", false},
		{"a", "a.b", false},
	}
	for _, tc := range tests {
		if got := Covers(tc.pattern, tc.sub); got != tc.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tc.pattern, tc.sub, got, tc.want)
		}
	}
}

func TestChangesIgnoreServerDefaultsAndFlagImmutables(t *testing.T) {
	desired := Stream(topic(hubflowv1.ExactlyOnce))
	observed := desired
	observed.Subjects = []string{"shop.payments.>", "shop.payments"} // order is not drift
	observed.Compression = jetstream.S2Compression                   // server-side setting nobody declared
	observed.Metadata = map[string]string{OwnerKey: "shop/payments", "_nats.ver": "2.15.2"}
	observed.AllowDirect = true
	if ch := StreamChanges(desired, observed); len(ch) != 0 {
		t.Fatalf("no drift expected, got %v", ch)
	}

	observed.Storage = jetstream.MemoryStorage
	observed.MaxAge = time.Hour
	ch := StreamChanges(desired, observed)
	if len(ch) != 2 || len(ch.Immutable()) != 1 || ch.Immutable()[0].Field != "storage" {
		t.Fatalf("want storage (immutable) and maxAge changes, got %v", ch)
	}

	dc, err := Consumer(topic(hubflowv1.AtLeastOnce), consumer(func(s *hubflowv1.ConsumerSpec) {
		s.FilterSubjects = []string{"shop.payments.eu"}
	}), hubflowv1.AtLeastOnce)
	if err != nil {
		t.Fatal(err)
	}
	oc := dc
	oc.FilterSubjects, oc.FilterSubject = nil, "shop.payments.eu" // the server may hold one filter either way
	oc.MaxWaiting, oc.Replicas = 512, 1
	if ch := ConsumerChanges(dc, oc); len(ch) != 0 {
		t.Fatalf("no drift expected, got %v", ch)
	}
	oc.AckPolicy = jetstream.AckNonePolicy
	oc.MaxAckPending = 10
	ch = ConsumerChanges(dc, oc)
	if len(ch) != 2 || len(ch.Immutable()) != 1 || ch.Immutable()[0].Field != "ackPolicy" {
		t.Fatalf("want ackPolicy (immutable) and maxAckPending changes, got %v", ch)
	}

	none, _ := Consumer(topic(hubflowv1.AtMostOnce), consumer(), hubflowv1.AtMostOnce)
	seen := none
	seen.AckWait = 30 * time.Second // the server keeps a default even for AckNone
	if ch := ConsumerChanges(none, seen); len(ch) != 0 {
		t.Fatalf("ack wait of an AckNone consumer is not drift, got %v", ch)
	}
}

func TestSubjectsInNamespace(t *testing.T) {
	for _, tc := range []struct {
		subjects []string
		field    string // "" when allowed
	}{
		{nil, ""}, // the defaults: shop.orders, shop.orders.>
		{[]string{"shop.payments", "shop.payments.>", "shop.*.eu"}, ""},
		{[]string{"shop.ok", "billing.orders"}, "spec.subjects[1]"},
		{[]string{"shopping.orders"}, "spec.subjects[0]"},
		{[]string{"shop"}, ""}, // the namespace token alone is its own
		{[]string{"*.orders"}, "spec.subjects[0]"},
		{[]string{">"}, "spec.subjects[0]"},
		{[]string{"_INBOX_shop_consumer_billing.>"}, "spec.subjects[0]"},
	} {
		topic := &hubflowv1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"}, Spec: hubflowv1.TopicSpec{Subjects: tc.subjects}}
		err := SubjectsInNamespace(topic)
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%v refused: %v", tc.subjects, err)
		case tc.field != "" && (err == nil || err.Field != tc.field || err.Reason != ReasonSubjectOutsideNamespace):
			t.Errorf("%v: got %v, want a refusal naming %s", tc.subjects, err, tc.field)
		}
	}
}
