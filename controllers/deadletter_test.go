package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/deadletter"
	"github.com/hubflow/hubflow/internal/hub"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testkube"
	"github.com/hubflow/hubflow/pkg/binding"
)

// poisonHeader tells the test's worker what to do with a message: "nak"
// fails every delivery, "term" terminates it with its payload as the reason.
const poisonHeader = "Test-Poison"

// work runs a worker on a durable the way a workload in any language
// would, with a plain JetStream client: it acknowledges good messages and
// fails or terminates the poison ones. It returns the good payloads seen.
func work(t *testing.T, stream, durable string) func() []string {
	t.Helper()
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var good []string
	cc, err := c.Consume(func(m jetstream.Msg) {
		switch m.Headers().Get(poisonHeader) {
		case "nak":
			_ = m.Nak()
		case "term":
			_ = m.TermWithReason(string(m.Data()))
		default:
			mu.Lock()
			good = append(good, string(m.Data()))
			mu.Unlock()
			_ = m.DoubleAck(ctx)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(good)
	}
}

func publish(t *testing.T, subject, data string, header nats.Header) uint64 {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = []byte(data)
	for k, v := range header {
		m.Header[k] = v
	}
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// letters reads every message on subject of stream.
func letters(t *testing.T, stream, subject string) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// waitLetters waits until subject holds n messages, then checks it still
// holds n after the mover had time to redeliver a cut-short move: a second
// copy would show.
func waitLetters(t *testing.T, stream, subject string, n int) []*jetstream.RawStreamMsg {
	t.Helper()
	eventually(t, wait, func() error {
		if got := len(letters(t, stream, subject)); got != n {
			return fmt.Errorf("%d dead letters on %s, want %d", got, subject, n)
		}
		return nil
	})
	time.Sleep(max(2*testDeadLetterAckWait, controllers.DeadLetterFallbackAfter+time.Second))
	got := letters(t, stream, subject)
	if len(got) != n {
		t.Fatalf("%d dead letters on %s after the mover's redelivery time, want %d: a message was set aside twice", len(got), subject, n)
	}
	return got
}

// deadLetterNames are the source stream, the dead-letter stream and the
// Consumer's dead-letter subject of deadLetterFlow, spelled out as the
// docs give them rather than computed by the code under test.
func deadLetterNames(ns string) (stream, deadStream, subject string) {
	stream = semantic.StreamName(ns, "orders")
	return stream, semantic.StreamName(ns, "dead"), ns + ".dead." + stream + ".billing"
}

func deadLetterFlow(ns string, sem hubflowv1.DeliverySemantic) (topic, dead *hubflowv1.Topic, cons *hubflowv1.Consumer) {
	topic = newTopic(ns, "orders", sem)
	dead = newTopic(ns, "dead", hubflowv1.ExactlyOnce)
	cons = newConsumer(ns, "billing", "orders")
	cons.Spec.MaxDeliver = ptrTo(int32(2))
	cons.Spec.AckWait = &metav1.Duration{Duration: time.Second}
	cons.Spec.Backoff = []metav1.Duration{{Duration: time.Second}}
	cons.Spec.DeadLetter = &hubflowv1.DeadLetter{TopicRef: hubflowv1.TopicReference{Name: "dead"}}
	return topic, dead, cons
}

// A message that fails every delivery, and one the worker terminates, each
// land in the dead-letter Topic once, with the payload, the headers and
// where they came from; good messages are untouched; status and events
// say what happened.
func TestPoisonMessagesAreSetAsideOnce(t *testing.T) {
	for _, sem := range []hubflowv1.DeliverySemantic{hubflowv1.AtLeastOnce, hubflowv1.ExactlyOnce} {
		t.Run(string(sem), func(t *testing.T) {
			ns := namespace(t)
			topic, dead, cons := deadLetterFlow(ns, sem)
			create(t, topic, dead, cons)
			ready(t, topic)
			ready(t, dead)
			ready(t, cons)
			stream, deadStream, subject := deadLetterNames(ns)
			eventually(t, wait, func() error {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
					return err
				}
				if dl := cons.Status.DeadLetter; dl == nil || dl.Subject != subject || dl.StreamName != deadStream {
					return fmt.Errorf("status.deadLetter %+v, want subject %s", dl, subject)
				}
				if !strings.Contains(cons.Status.Undeliverable, "dead-letter Topic dead") {
					return fmt.Errorf("undeliverable %q does not name the dead-letter Topic", cons.Status.Undeliverable)
				}
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(dead), dead); err != nil {
					return err
				}
				if src := dead.Status.DeadLetterSources; src == nil || !slices.Equal(src.Names, []string{"billing"}) {
					return fmt.Errorf("dead-letter Topic's sources %+v, want billing", src)
				}
				return nil
			})

			good := work(t, stream, "billing")
			publish(t, ns+".orders", "good-1", nil)
			nakSeq := publish(t, ns+".orders", "fails", nats.Header{poisonHeader: {"nak"}, "Ce-Type": {"order.created"}})
			termSeq := publish(t, ns+".orders", "amount is negative", nats.Header{poisonHeader: {"term"}, nats.MsgIdHdr: {"order-7"}})
			publish(t, ns+".orders", "good-2", nil)

			got := waitLetters(t, deadStream, subject, 2)
			byReason := map[string]*jetstream.RawStreamMsg{}
			for _, m := range got {
				byReason[m.Header.Get(deadletter.HeaderReason)] = m
			}
			exhausted, terminated := byReason["MaxDeliveries"], byReason["Terminated"]
			if exhausted == nil || terminated == nil {
				t.Fatalf("dead letters by reason: %v", byReason)
			}
			for name, want := range map[string]string{
				deadletter.HeaderStream: stream, deadletter.HeaderSequence: fmt.Sprint(nakSeq), deadletter.HeaderDeliveries: "2",
				deadletter.HeaderSubject: ns + ".orders", deadletter.HeaderTopic: ns + "/orders", deadletter.HeaderConsumer: ns + "/billing",
				"Ce-Type": "order.created", poisonHeader: "nak",
			} {
				if got := exhausted.Header.Get(name); got != want {
					t.Errorf("exhausted letter: %s = %q, want %q", name, got, want)
				}
			}
			if string(exhausted.Data) != "fails" {
				t.Errorf("exhausted letter payload %q", exhausted.Data)
			}
			for name, want := range map[string]string{
				deadletter.HeaderSequence: fmt.Sprint(termSeq), deadletter.HeaderError: "amount is negative",
				deadletter.HeaderKey: "order-7", "Hubflow-Original-Nats-Msg-Id": "order-7",
			} {
				if got := terminated.Header.Get(name); got != want {
					t.Errorf("terminated letter: %s = %q, want %q", name, got, want)
				}
			}
			eventually(t, wait, func() error {
				if g := good(); !slices.Equal(g, []string{"good-1", "good-2"}) {
					return fmt.Errorf("good messages processed: %v", g)
				}
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
					return err
				}
				if dl := cons.Status.DeadLetter; dl == nil || dl.Held != 2 {
					return fmt.Errorf("status.deadLetter %+v, want 2 held", dl)
				}
				return nil
			})
			e := eventFor(t, cons, controllers.ReasonDeadLettered)
			if !strings.Contains(e.Note, "dead-letter Topic dead") {
				t.Errorf("event %q", e.Note)
			}
		})
	}
}

// A move cut short after the publish (the mover killed before it
// acknowledged the announcement) is handed out again after the dead-letter
// stream's duplicate window has passed: the mover finds the letter it
// published and publishes no second one.
func TestDeadLetterMoveCutShortIsNotRepeated(t *testing.T) {
	ns := namespace(t)
	topic, dead, cons := deadLetterFlow(ns, hubflowv1.AtLeastOnce)
	dead.Spec.DuplicateWindow = &metav1.Duration{Duration: time.Second}
	create(t, topic, dead, cons)
	ready(t, dead)
	ready(t, cons)
	stream, deadStream, subject := deadLetterNames(ns)

	controllers.CrashDeadLetterMoves(t, 2)
	work(t, stream, "billing")
	publish(t, ns+".orders", "one", nats.Header{poisonHeader: {"term"}})
	publish(t, ns+".orders", "two", nats.Header{poisonHeader: {"term"}})
	got := waitLetters(t, deadStream, subject, 2)
	if string(got[0].Data) == string(got[1].Data) {
		t.Fatalf("both letters carry %q", got[0].Data)
	}
}

// Messages given up on while no mover runs, or while the dead-letter Topic
// does not exist yet, wait in the capture stream and are moved once both
// are there; meanwhile the Consumer serves and says where they wait.
func TestDeadLettersWaitForTheMoverAndTheTopic(t *testing.T) {
	ns := namespace(t)
	topic, dead, cons := deadLetterFlow(ns, hubflowv1.ExactlyOnce)
	create(t, topic, cons)
	ready(t, topic)
	c := condition(t, cons, hubflowv1.ConditionSynced, metav1.ConditionFalse, controllers.ReasonDeadLetterTopicNotReady)
	condition(t, cons, hubflowv1.ConditionReady, metav1.ConditionTrue, "")
	if !strings.Contains(c.Message, controllers.CaptureStream) {
		t.Errorf("Synced message %q does not say where dead letters wait", c.Message)
	}
	stream, deadStream, subject := deadLetterNames(ns)

	start := controllers.StopDeadLetterMover(t)
	capture, err := js.Stream(ctx, controllers.CaptureStream)
	if err != nil {
		t.Fatal(err)
	}
	before := capture.CachedInfo().State.Msgs
	work(t, stream, "billing")
	publish(t, ns+".orders", "lost without a dead-letter Topic", nats.Header{poisonHeader: {"nak"}})
	eventually(t, wait, func() error {
		info, err := capture.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs <= before {
			return errors.New("the server's announcement is not captured")
		}
		return nil
	})
	create(t, dead)
	ready(t, dead)
	ready(t, cons)
	time.Sleep(2 * testDeadLetterAckWait)
	if n := len(letters(t, deadStream, subject)); n != 0 {
		t.Fatalf("%d letters moved while the mover was stopped", n)
	}
	start()
	got := waitLetters(t, deadStream, subject, 1)
	if string(got[0].Data) != "lost without a dead-letter Topic" {
		t.Errorf("letter %q", got[0].Data)
	}
}

// The server's announcement is a plain publish: one made while the
// capture stream has no leader is stored nowhere. The manager heard it too,
// and moves the message once it finds the capture stream without it (here
// the stored announcement is deleted, since a real election cannot be timed
// between the publish and the store); the mover, once back, moves no copy.
func TestAnnouncementTheCaptureMissedIsMovedAnyway(t *testing.T) {
	ns := namespace(t)
	topic, dead, cons := deadLetterFlow(ns, hubflowv1.AtLeastOnce)
	create(t, topic, dead, cons)
	ready(t, dead)
	ready(t, cons)
	stream, deadStream, subject := deadLetterNames(ns)
	start := controllers.StopDeadLetterMover(t)
	capture, err := js.Stream(ctx, controllers.CaptureStream)
	if err != nil {
		t.Fatal(err)
	}
	announcement := "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + stream + ".billing"
	work(t, stream, "billing")
	publish(t, ns+".orders", "missed", nats.Header{poisonHeader: {"term"}})
	var seq uint64
	eventually(t, wait, func() error {
		m, err := capture.GetLastMsgForSubject(ctx, announcement)
		if err != nil {
			return err
		}
		seq = m.Sequence
		return nil
	})
	if err := capture.DeleteMsg(ctx, seq); err != nil {
		t.Fatal(err)
	}
	got := waitLetters(t, deadStream, subject, 1)
	if string(got[0].Data) != "missed" {
		t.Errorf("letter %q", got[0].Data)
	}
	start()
	waitLetters(t, deadStream, subject, 1)
}

// Replaying sends each dead letter back to its source Topic once, under the
// original's idempotency key, and removes it from the dead-letter Topic; a
// second request finds nothing left to replay. A request that cannot be
// read is refused with a Warning.
func TestReplayDeadLetters(t *testing.T) {
	ns := namespace(t)
	topic, dead, cons := deadLetterFlow(ns, hubflowv1.ExactlyOnce)
	create(t, topic, dead, cons)
	ready(t, dead)
	ready(t, cons)
	stream, deadStream, subject := deadLetterNames(ns)

	// The poison is in the header, so a replay would die again: read the
	// source stream instead of running the worker past the dead-lettering.
	worker, err := js.Consumer(ctx, stream, "billing")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := worker.Consume(func(m jetstream.Msg) { _ = m.TermWithReason("bug #12") })
	if err != nil {
		t.Fatal(err)
	}
	publish(t, ns+".orders", "a", nats.Header{nats.MsgIdHdr: {"order-a"}})
	publish(t, ns+".orders", "b", nil)
	waitLetters(t, deadStream, subject, 2)
	cc.Stop() // the bug is fixed: nothing terminates any more
	sourceBefore, _ := js.Stream(ctx, stream)
	lastBefore := sourceBefore.CachedInfo().State.LastSeq

	annotate := func(v string) {
		t.Helper()
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
				return err
			}
			if cons.Annotations == nil {
				cons.Annotations = map[string]string{}
			}
			cons.Annotations[hubflowv1.ReplayDeadLettersAnnotation] = v
			return k8s.Update(ctx, cons)
		}); err != nil {
			t.Fatal(err)
		}
		eventually(t, wait, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
				return err
			}
			if _, ok := cons.Annotations[hubflowv1.ReplayDeadLettersAnnotation]; ok {
				return errors.New("the replay request is still there")
			}
			return nil
		})
	}
	annotate("all")
	eventFor(t, cons, controllers.ReasonDeadLettersReplayed)
	annotate("all") // nothing left: no second copy
	if n := len(letters(t, deadStream, subject)); n != 0 {
		t.Errorf("%d letters left after the replay", n)
	}
	source, _ := js.Stream(ctx, stream)
	var keys []string
	for seq := lastBefore + 1; seq <= source.CachedInfo().State.LastSeq; seq++ {
		m, err := source.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, string(m.Data)+"="+m.Header.Get(binding.IdempotencyKeyHeader))
	}
	slices.Sort(keys)
	wantB := fmt.Sprintf("b=%s:2:", stream)
	if len(keys) != 2 || keys[0] != "a=order-a" || !strings.HasPrefix(keys[1], wantB) {
		t.Errorf("replayed into the source: %v; want a under order-a and b under %s<stored ns>, once each", keys, wantB)
	}
	eventually(t, wait, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		if dl := cons.Status.DeadLetter; dl == nil || dl.Held != 0 {
			return fmt.Errorf("status.deadLetter %+v, want 0 held", dl)
		}
		return nil
	})

	annotate("seven")
	e := eventFor(t, cons, controllers.ReasonReplayFailed)
	if !strings.Contains(e.Note, `"seven"`) {
		t.Errorf("event %q does not quote the request", e.Note)
	}
}

// A Consumer that inherits AtMostOnce from its Topic acknowledges nothing,
// so no message is ever given up on: a dead-letter Topic cannot work, and
// the Consumer says so instead of pretending.
func TestDeadLetterNeedsAnAcknowledgingSemantic(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "metrics", hubflowv1.AtMostOnce)
	dead := newTopic(ns, "dead", hubflowv1.AtLeastOnce)
	cons := newConsumer(ns, "dashboard", "metrics")
	cons.Spec.DeadLetter = &hubflowv1.DeadLetter{TopicRef: hubflowv1.TopicReference{Name: "dead"}}
	create(t, topic, dead, cons)
	c := condition(t, cons, hubflowv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonDeadLetterNeedsAcks)
	if !strings.Contains(c.Message, "spec.deadLetter") {
		t.Errorf("message %q does not name the field", c.Message)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := js.Consumer(cctx, semantic.StreamName(ns, "metrics"), "dashboard"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("durable lookup: %v, want not found: no durable for a refused Consumer", err)
	}
}

// BenchmarkDeadLetterMoves measures how fast the mover sets messages aside:
// b.N messages, each terminated by the worker at once, from the first
// publish until the last dead letter is stored. The baseline, in the same
// run, is one client publishing the same messages one acknowledged publish
// at a time: a move costs a fetch, an acknowledged publish and an
// acknowledged acknowledgement, so about a third of it is the floor of a
// one-at-a-time mover.
//
//	go test ./controllers -run '^$' -bench DeadLetterMoves -benchtime 2000x
var benchRuns int

func BenchmarkDeadLetterMoves(b *testing.B) {
	benchRuns++
	ns := fmt.Sprintf("bench-dead-letters-%d", benchRuns)
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	topic, dead, cons := deadLetterFlow(ns, hubflowv1.AtLeastOnce)
	cons.Spec.MaxAckPending = ptrTo(int32(10000))
	for _, o := range []client.Object{topic, dead, cons} {
		if err := k8s.Create(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	stream, deadStream, subject := deadLetterNames(ns)
	testkube.Eventually(b, wait, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		if cons.Status.DeadLetter == nil || cons.Status.DeadLetter.Subject == "" {
			return errors.New("consumer not ready with its dead-letter Topic")
		}
		return nil
	})
	worker, err := js.Consumer(ctx, stream, "billing")
	if err != nil {
		b.Fatal(err)
	}
	cc, err := worker.Consume(func(m jetstream.Msg) { _ = m.TermWithReason("poison") })
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	payload := make([]byte, 256)
	var apiRequests atomic.Int64
	sub, err := js.Conn().Subscribe("$JS.API.>", func(*nats.Msg) { apiRequests.Add(1) })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := js.Conn().Flush(); err != nil {
		b.Fatal(err)
	}
	apiBefore := apiRequests.Load()

	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := js.Publish(ctx, ns+".orders", payload); err != nil {
			b.Fatal(err)
		}
	}
	published := time.Since(start)
	ds, err := js.Stream(ctx, deadStream)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		info, err := ds.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			b.Fatal(err)
		}
		if n := info.State.Subjects[subject]; n >= uint64(b.N) {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("%d of %d dead letters after 5 minutes", n, b.N)
		}
		time.Sleep(20 * time.Millisecond)
	}
	moved := time.Since(start)
	b.StopTimer()
	// The JetStream API requests of everyone on the hub, until the
	// manager's check of each heard announcement is done too: the figure to
	// watch when the mover learns a new step.
	time.Sleep(controllers.DeadLetterFallbackAfter + 2*time.Second)
	b.ReportMetric(float64(apiRequests.Load()-apiBefore)/float64(b.N), "api-requests/move")
	b.ReportMetric(float64(b.N)/moved.Seconds(), "moves/s")
	b.ReportMetric(float64(b.N)/published.Seconds(), "publishes/s")
	b.ReportMetric(published.Seconds()/moved.Seconds(), "moves/publishes")
}

// Counting the held dead letters is a report, not the flow: when the count
// cannot be had (here the dead-letter stream is gone and its Topic has not
// noticed yet), the Consumer keeps serving and says Ready.
func TestUncountableDeadLettersLeaveTheConsumerReady(t *testing.T) {
	ns := namespace(t)
	topic, dead, cons := deadLetterFlow(ns, hubflowv1.AtLeastOnce)
	create(t, topic, dead, cons)
	ready(t, dead)
	ready(t, cons)
	// Nothing repairs the stream during the test: the Topic keeps saying
	// Ready, as it does until an advisory or the observer reports the loss.
	controllers.DropAdvisories(t, hub.StreamDeleted, hub.StreamUpdated, hub.StreamCreated, hub.StreamCall, hub.ConsumerDeleted, hub.ConsumerCall)
	controllers.PauseObserver(t)
	if err := js.DeleteStream(ctx, semantic.StreamName(ns, "dead")); err != nil {
		t.Fatal(err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		cons.Spec.MaxAckPending = ptrTo(int32(50))
		return k8s.Update(ctx, cons)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cons), cons); err != nil {
			return err
		}
		for _, c := range cons.Status.Conditions {
			if c.Type == hubflowv1.ConditionReady && c.ObservedGeneration == cons.Generation {
				if c.Status != metav1.ConditionTrue {
					return fmt.Errorf("Ready=%s %s: %s (stopped waiting: this is the failure)", c.Status, c.Reason, c.Message)
				}
				return nil
			}
		}
		return fmt.Errorf("generation %d not reconciled yet: %v", cons.Generation, cons.Status.Conditions)
	})
	// A reconcile that failed on the count and a later one that found the
	// stream again (the Topic recreates it) would both pass the wait above:
	// the failure shows as its Warning event. The Topic, woken by the edit,
	// finds its stream gone and recreates it: the Consumer may truthfully
	// say meanwhile that its dead letters wait (Ready stays True).
	time.Sleep(2 * time.Second)
	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Regarding.Name == cons.Name && e.Regarding.Kind == "Consumer" && e.Type == corev1.EventTypeWarning && e.Reason != controllers.ReasonDeadLetterTopicNotReady {
			t.Errorf("Warning %s on the Consumer: %s", e.Reason, e.Note)
		}
	}
}
