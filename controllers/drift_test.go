package controllers_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testkube"
)

// Out-of-band changes are made here the way the nats CLI makes them: a
// separate plain client calling the JetStream API. The observer is paused
// and the resync is an hour away, so only the advisory watch can repair,
// and healWait is far below both.
const healWait = 5 * time.Second

// driftFlow is a Topic with one Consumer, both ready, on a stream that
// receives no messages: nothing but the change under test moves.
type driftFlow struct {
	topic    *hubflowv1.Topic
	consumer *hubflowv1.Consumer
	stream   string
	durable  string
	// the stream and durable as hubflow made them
	streamCfg  jetstream.StreamConfig
	durableCfg jetstream.ConsumerConfig
}

func newDriftFlow(t testing.TB, ns string) *driftFlow {
	topic := newTopic(ns, "ledger", hubflowv1.AtLeastOnce)
	topic.Spec.Retention = &hubflowv1.RetentionLimits{MaxAge: &metav1.Duration{Duration: time.Hour}}
	cons := newConsumer(ns, "auditor", "ledger")
	cons.Spec.MaxDeliver = ptrTo(int32(5))
	f := &driftFlow{topic: topic, consumer: cons, stream: semantic.StreamName(ns, "ledger"), durable: "auditor"}
	for _, o := range []client.Object{topic, cons} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	f.waitHealed(t, 2*wait, func() error {
		for _, o := range []client.Object{topic, cons} {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(conditionsOf(o), hubflowv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("%s not ready yet", o.GetName())
			}
		}
		return nil
	})
	s, err := js.Stream(ctx, f.stream)
	if err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, f.stream, f.durable)
	if err != nil {
		t.Fatal(err)
	}
	f.streamCfg, f.durableCfg = s.CachedInfo().Config, c.CachedInfo().Config
	if f.durableCfg.MaxDeliver != 5 {
		t.Fatalf("durable starts with maxDeliver %d, want 5", f.durableCfg.MaxDeliver)
	}
	return f
}

// streamRestored is nil once the stream is back as hubflow made it.
func (f *driftFlow) streamRestored() error {
	s, err := js.Stream(ctx, f.stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w; %s", f.stream, err, f.status())
	}
	got := s.CachedInfo().Config
	if got.MaxAge != f.streamCfg.MaxAge || got.MaxMsgs != f.streamCfg.MaxMsgs {
		return fmt.Errorf("stream %s has maxAge %s maxMsgs %d, hubflow made %s and %d; %s",
			f.stream, got.MaxAge, got.MaxMsgs, f.streamCfg.MaxAge, f.streamCfg.MaxMsgs, f.status())
	}
	return nil
}

// durableRestored is nil once the durable is back as hubflow made it.
func (f *driftFlow) durableRestored() error {
	c, err := js.Consumer(ctx, f.stream, f.durable)
	if err != nil {
		return fmt.Errorf("durable %s: %w; %s", f.durable, err, f.status())
	}
	got, want := c.CachedInfo().Config, f.durableCfg
	if got.MaxDeliver != want.MaxDeliver || got.AckWait != want.AckWait || !slices.Equal(got.BackOff, want.BackOff) || got.MaxAckPending != want.MaxAckPending {
		return fmt.Errorf("durable %s has maxDeliver %d ackWait %s backoff %v maxAckPending %d, hubflow made %d %s %v %d; %s",
			f.durable, got.MaxDeliver, got.AckWait, got.BackOff, got.MaxAckPending,
			want.MaxDeliver, want.AckWait, want.BackOff, want.MaxAckPending, f.status())
	}
	return nil
}

// status is what the objects say, for a failure message: a repair that
// never came while they claim Ready and Synced is the defect.
func (f *driftFlow) status() string {
	var parts []string
	for _, o := range []client.Object{f.topic.DeepCopy(), f.consumer.DeepCopy()} {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", o.GetName(), err))
			continue
		}
		var conds []string
		for _, c := range conditionsOf(o) {
			conds = append(conds, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
		}
		parts = append(parts, fmt.Sprintf("%T %s says %s", o, o.GetName(), strings.Join(conds, " ")))
	}
	return strings.Join(parts, "; ")
}

func (f *driftFlow) waitHealed(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	testkube.Eventually(t, timeout, check)
}

func (f *driftFlow) editDurable(t testing.TB) {
	t.Helper()
	edited := f.durableCfg
	edited.MaxDeliver = 99
	edited.BackOff = []time.Duration{time.Second, 2 * time.Second}
	edited.MaxAckPending = 7
	c, err := js.UpdateConsumer(ctx, f.stream, edited)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config; got.MaxDeliver != 99 || got.MaxAckPending != 7 {
		t.Fatalf("the edit did not take: maxDeliver %d maxAckPending %d", got.MaxDeliver, got.MaxAckPending)
	}
}

func (f *driftFlow) editStream(t testing.TB) {
	t.Helper()
	edited := f.streamCfg
	edited.MaxAge = 30 * time.Minute
	edited.MaxMsgs = 42
	s, err := js.UpdateStream(ctx, edited)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.MaxAge != edited.MaxAge || got.MaxMsgs != 42 {
		t.Fatalf("the edit did not take: maxAge %s maxMsgs %d", got.MaxAge, got.MaxMsgs)
	}
}

// A durable edited behind hubflow's back, on a stream that receives
// nothing, is put back: JetStream sends no advisory for a consumer edit,
// only the API audit advisory reports it.
func TestDurableEditIsUndone(t *testing.T) {
	controllers.PauseObserver(t)
	f := newDriftFlow(t, namespace(t))
	f.editDurable(t)
	f.waitHealed(t, healWait, f.durableRestored)
	eventFor(t, f.consumer, "ConsumerUpdated")
}

// Each out-of-band change is reported by two independent advisories, and
// either alone repairs it: the server sometimes drops STREAM.DELETED.
func TestLostAdvisoryIsCoveredByTheOther(t *testing.T) {
	audit := []hub.AdvisoryKind{hub.StreamCall, hub.ConsumerCall}
	for _, tc := range []struct {
		name   string
		lost   []hub.AdvisoryKind
		change func(t *testing.T, f *driftFlow)
		healed func(f *driftFlow) error
	}{
		{
			name: "stream edit without STREAM.UPDATED", lost: []hub.AdvisoryKind{hub.StreamUpdated},
			change: func(t *testing.T, f *driftFlow) { f.editStream(t) },
			healed: (*driftFlow).streamRestored,
		},
		{
			name: "stream deletion without STREAM.DELETED", lost: []hub.AdvisoryKind{hub.StreamDeleted, hub.ConsumerDeleted},
			change: func(t *testing.T, f *driftFlow) {
				if err := js.DeleteStream(ctx, f.stream); err != nil {
					t.Fatal(err)
				}
			},
			healed: func(f *driftFlow) error { return errors.Join(f.streamRestored(), f.durableRestored()) },
		},
		{
			// The Topic's StreamRecreated time has a one-second grain: the
			// second recreation may leave its status as it was, and then
			// only the watch wakes the Consumer.
			name: "stream deleted twice in a row without STREAM.DELETED", lost: []hub.AdvisoryKind{hub.StreamDeleted, hub.ConsumerDeleted},
			change: func(t *testing.T, f *driftFlow) {
				if err := js.DeleteStream(ctx, f.stream); err != nil {
					t.Fatal(err)
				}
				f.waitHealed(t, healWait, func() error { return errors.Join(f.streamRestored(), f.durableRestored()) })
				if err := js.DeleteStream(ctx, f.stream); err != nil {
					t.Fatal(err)
				}
			},
			healed: func(f *driftFlow) error { return errors.Join(f.streamRestored(), f.durableRestored()) },
		},
		{
			name: "durable deletion without CONSUMER.DELETED", lost: []hub.AdvisoryKind{hub.ConsumerDeleted},
			change: func(t *testing.T, f *driftFlow) {
				if err := js.DeleteConsumer(ctx, f.stream, f.durable); err != nil {
					t.Fatal(err)
				}
			},
			healed: (*driftFlow).durableRestored,
		},
		{
			name: "stream deletion without the API audit", lost: audit,
			change: func(t *testing.T, f *driftFlow) {
				if err := js.DeleteStream(ctx, f.stream); err != nil {
					t.Fatal(err)
				}
			},
			healed: func(f *driftFlow) error { return errors.Join(f.streamRestored(), f.durableRestored()) },
		},
		{
			// What the server announces for each of the stream's durables
			// is enough: a Consumer finding its stream gone wakes the Topic.
			name: "stream deletion with only CONSUMER.DELETED", lost: append([]hub.AdvisoryKind{hub.StreamDeleted}, audit...),
			change: func(t *testing.T, f *driftFlow) {
				if err := js.DeleteStream(ctx, f.stream); err != nil {
					t.Fatal(err)
				}
			},
			healed: func(f *driftFlow) error { return errors.Join(f.streamRestored(), f.durableRestored()) },
		},
		{
			name: "durable deletion without the API audit", lost: audit,
			change: func(t *testing.T, f *driftFlow) {
				if err := js.DeleteConsumer(ctx, f.stream, f.durable); err != nil {
					t.Fatal(err)
				}
			},
			healed: (*driftFlow).durableRestored,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			controllers.PauseObserver(t)
			f := newDriftFlow(t, namespace(t))
			controllers.DropAdvisories(t, tc.lost...)
			tc.change(t, f)
			f.waitHealed(t, healWait, func() error { return tc.healed(f) })
		})
	}
}

// A burst of advisories larger than any buffer, arriving while the watch
// is busy, loses none of the changes in it.
func TestAdvisoryBurstLosesNothing(t *testing.T) {
	controllers.PauseObserver(t)
	ns := namespace(t)
	f := newDriftFlow(t, ns)
	// A stream hubflow does not own: its advisories concern no object.
	scratch := jetstream.StreamConfig{Name: "SCRATCH_" + strings.ReplaceAll(ns, "-", "_"), Subjects: []string{ns + ".scratch"}, Storage: jetstream.MemoryStorage}
	if _, err := js.CreateStream(ctx, scratch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(ctx, scratch.Name) })

	other := newConsumer(ns, "second", "ledger")
	create(t, other)
	ready(t, other)
	// The Topic's reconcile for its new registration must be over, or it
	// would repair the stream below by chance.
	f.waitHealed(t, wait, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(f.topic), f.topic); err != nil {
			return err
		}
		if r := f.topic.Status.Consumers; r == nil || r.Count != 2 {
			return fmt.Errorf("topic registry %+v", r)
		}
		return nil
	})

	release := controllers.HoldAdvisories(t)
	const burst = 1500 // over the 1024 the watch used to buffer
	for i := range burst {
		scratch.MaxMsgs = int64(1000 + i%2)
		if _, err := js.UpdateStream(ctx, scratch); err != nil {
			t.Fatal(err)
		}
	}
	f.editStream(t)
	f.editDurable(t)
	if err := js.DeleteConsumer(ctx, f.stream, "second"); err != nil {
		t.Fatal(err)
	}
	release()
	f.waitHealed(t, healWait, func() error {
		_, err := js.Consumer(ctx, f.stream, "second")
		return errors.Join(f.streamRestored(), f.durableRestored(), err)
	})
}

// The watch costs no JetStream request while nothing changes, and one
// out-of-band edit costs the repair alone: the reconcile's read and its
// update. The manager's own calls report nothing back to it, so there is
// no loop.
func TestDriftWatchRequests(t *testing.T) {
	controllers.PauseObserver(t)
	f := newDriftFlow(t, namespace(t))
	calls := auditLog(t)
	apiRequests := func() uint64 {
		n, err := hubNATS.APIRequests()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Retries scheduled by earlier tests (an outage, refused objects) may
	// still be draining; the steady state is what is measured.
	const window = 2 * time.Second
	for attempt := 1; ; attempt++ {
		calls.reset()
		before := apiRequests()
		time.Sleep(window)
		n := apiRequests() - before
		t.Logf("idle for %s: %d JetStream API requests %v", window, n, calls.reset())
		if n == 0 {
			break
		}
		if attempt == 3 {
			t.Fatalf("idle hub with the observer paused made %d JetStream API requests", n)
		}
	}

	before := apiRequests()
	f.editDurable(t)
	calls.waitFor(t, "hubflow-manager", "$JS.API.CONSUMER.CREATE."+f.stream+"."+f.durable)
	time.Sleep(window) // anything the repair set off
	n := apiRequests() - before
	made := calls.reset()
	t.Logf("one durable edit: %d JetStream API requests in %s: %v", n, window, made)
	if err := f.durableRestored(); err != nil {
		t.Fatal(err)
	}
	// 1 by the test, 2 by the repair (the reconcile's INFO, its update).
	if n > 3 {
		t.Errorf("one edit cost %d JetStream API requests, want at most 3: %v", n, made)
	}
}

// auditTrail records every JetStream API call in the account, by caller,
// from the audit advisory.
type auditTrail struct {
	mu    sync.Mutex
	calls []string
}

func auditLog(t *testing.T) *auditTrail {
	nc, err := nats.Connect(hubNATS.URL(), nats.Name("drift-test-audit"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	a := &auditTrail{}
	if _, err := nc.Subscribe("$JS.EVENT.ADVISORY.API", func(m *nats.Msg) {
		var e struct {
			Subject string `json:"subject"`
			Client  struct {
				Name string `json:"name"`
			} `json:"client"`
		}
		if json.Unmarshal(m.Data, &e) == nil {
			a.mu.Lock()
			name := e.Client.Name
			if name == "" {
				name = "(test client)"
			}
			a.calls = append(a.calls, name+" "+e.Subject)
			a.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *auditTrail) reset() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.calls
	a.calls = nil
	return out
}

func (a *auditTrail) waitFor(t *testing.T, caller, subject string) {
	t.Helper()
	eventually(t, healWait, func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if slices.Contains(a.calls, caller+" "+subject) {
			return nil
		}
		return fmt.Errorf("no call %s by %s among %v", subject, caller, a.calls)
	})
}

// BenchmarkDriftHeal times the repair of out-of-band changes, from the
// change's reply to the moment a client sees the stream or durable as
// hubflow made it, with the observer paused. Run:
//
//	go test ./controllers -run '^$' -bench DriftHeal -benchtime 20x
func BenchmarkDriftHeal(b *testing.B) {
	deleteStream := func(b *testing.B, f *driftFlow) {
		if err := js.DeleteStream(ctx, f.stream); err != nil {
			b.Fatal(err)
		}
	}
	bothRestored := func(f *driftFlow) error { return errors.Join(f.streamRestored(), f.durableRestored()) }
	for _, bc := range []struct {
		name   string
		lost   []hub.AdvisoryKind
		change func(*testing.B, *driftFlow)
		healed func(*driftFlow) error
	}{
		{"durable-edit", nil, func(b *testing.B, f *driftFlow) { f.editDurable(b) }, (*driftFlow).durableRestored},
		{"durable-deletion", nil, func(b *testing.B, f *driftFlow) {
			if err := js.DeleteConsumer(ctx, f.stream, f.durable); err != nil {
				b.Fatal(err)
			}
		}, (*driftFlow).durableRestored},
		{"stream-edit", nil, func(b *testing.B, f *driftFlow) { f.editStream(b) }, (*driftFlow).streamRestored},
		{"stream-deletion", nil, deleteStream, bothRestored},
		{"stream-deletion-without-STREAM.DELETED", []hub.AdvisoryKind{hub.StreamDeleted, hub.ConsumerDeleted}, deleteStream, bothRestored},
	} {
		b.Run(bc.name, func(b *testing.B) {
			controllers.PauseObserver(b)
			f := newDriftFlow(b, benchNamespace(b))
			controllers.DropAdvisories(b, bc.lost...)
			var took []time.Duration
			for range b.N {
				start := time.Now()
				bc.change(b, f)
				for bc.healed(f) != nil {
					if time.Since(start) > time.Minute {
						b.Fatalf("not repaired in a minute: %v", bc.healed(f))
					}
					time.Sleep(time.Millisecond)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			median, worst := took[len(took)/2], took[len(took)-1]
			b.ReportMetric(float64(median.Microseconds())/1000, "heal-median-ms")
			b.ReportMetric(float64(worst.Microseconds())/1000, "heal-max-ms")
			b.Logf("%s repaired: median %s, max %s over %d changes", bc.name, median, worst, len(took))
		})
	}
}

var benchSeq int

func benchNamespace(b *testing.B) string {
	benchSeq++
	name := fmt.Sprintf("bench-drift-%d", benchSeq)
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		b.Fatal(err)
	}
	return name
}
