// Package deadletter is the conformance proof of hubflow's dead letters
// (issue 12) under faults: poison messages among many good ones, for each
// acknowledging semantic, while the mover is killed mid-move, NATS leaders
// are killed and the consumers are killed. Every poison message must end in
// its dead-letter Topic exactly once with its provenance, and every good one
// must be processed as its semantic promises.
//
//	go test ./test/deadletter -count=1 -v                    # 2000 messages per semantic
//	make test-deadletter-long                                # 10,000 (DLQ_MESSAGES)
package deadletter

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/deadletter"
	"github.com/hubflow/hubflow/internal/testdiag"
	"github.com/hubflow/hubflow/internal/testnats"
)

// publishSpread is the least time the publishers take: poison messages die
// throughout it, so each fault lands while some are dying.
const publishSpread = 20 * time.Second

// clock is how the test's log writes a time.
const clock = "15:04:05.000"

func TestPoisonMessagesAreSetAsideOnceUnderFaults(t *testing.T) {
	messages, poison := size(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute+time.Duration(messages)*20*time.Millisecond)
	defer cancel()
	var doing atomic.Pointer[string]
	at := func(step string) { doing.Store(&step) }
	at("starting the hub")
	// Armed first, so that it still watches the hub's cleanups.
	testdiag.Watchdog(t, func() string { return *doing.Load() })
	h := startHub(t)
	t.Cleanup(func() { at("cleaning up: stopping the manager, the NATS cluster and the API server") })
	k8s := h.env.Client
	at("declaring the flows")

	flows := []*flow{newFlow(t, hubflowv1.AtLeastOnce), newFlow(t, hubflowv1.ExactlyOnce)}
	for _, f := range flows {
		f.declare(ctx, t, k8s)
	}
	refuseAtMostOnce(ctx, t, k8s, flows[0].ns)
	at("starting the consumers")
	for _, f := range flows {
		if err := f.startWorker(ctx); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, f := range flows {
			_ = f.killWorker()
		}
	}()
	defer func() {
		if t.Failed() {
			h.dump(ctx, t, flows)
		}
	}()
	streams := []string{controllers.CaptureStream}
	for _, f := range flows {
		streams = append(streams, f.stream, f.deadStream)
	}

	at("publishing")
	began := time.Now()
	published := make(chan error, len(flows))
	for _, f := range flows {
		go func() { published <- f.publish(ctx, h.js, messages, poison, publishSpread) }()
	}
	progress := func() float64 {
		least := 1.0
		for _, f := range flows {
			least = min(least, float64(f.published.Load())/float64(messages))
		}
		return least
	}
	steps := []struct {
		at   float64
		name string
		do   func() (string, error)
	}{
		{0.2, "mover killed mid-move", func() (string, error) { return killMover(ctx, h, flows) }},
		{0.4, "capture stream leader killed", func() (string, error) {
			return h.killNode(ctx, func() *testnats.Server { return h.streamLeader(controllers.CaptureStream) }, 2*time.Second, streams)
		}},
		{0.6, "consumers killed", func() (string, error) { return killConsumers(ctx, flows) }},
		{0.8, "meta leader killed", func() (string, error) { return h.killNode(ctx, h.cluster.MetaLeader, 2*time.Second, streams) }},
	}
	for _, s := range steps {
		for progress() < s.at {
			if err := pause(ctx, 20*time.Millisecond); err != nil {
				t.Fatalf("waiting to fire %q: %v", s.name, err)
			}
		}
		at("firing fault " + strconv.Quote(s.name))
		start := time.Now()
		what, err := s.do()
		if err != nil {
			t.Errorf("fault %q not carried out: %v", s.name, err)
			continue
		}
		t.Logf("fault at %2.0f%% published, %s..%s: %s: %s", s.at*100, start.UTC().Format(clock), time.Now().UTC().Format(clock), s.name, what)
	}
	at("waiting for the publishers")
	for range flows {
		if err := <-published; err != nil {
			t.Fatal(err)
		}
	}
	at("reading the source streams")
	t.Logf("published %d messages per semantic (%d poison) in %s", messages, poison, time.Since(began).Round(time.Millisecond))

	// What the source streams hold is what must be accounted for: an
	// AtLeastOnce publish retried under a fault may be stored twice, and
	// each stored poison copy is a message the durable gives up on.
	want := map[*flow]map[uint64]stored{}
	for _, f := range flows {
		all, err := readAll(ctx, h.js, f.stream, "")
		if err != nil {
			t.Fatalf("reading %s: %v", f.stream, err)
		}
		want[f] = map[uint64]stored{}
		for _, m := range all {
			if m.header.Get(poisonHeader) != "" {
				want[f][m.seq] = m
			}
		}
		t.Logf("%s: stream %s holds %d messages, %d of them poison", f.sem, f.stream, len(all), len(want[f]))
	}
	at("waiting for every dead letter and good message")
	err := until(ctx, 2*time.Minute+time.Duration(messages)*10*time.Millisecond, func() error {
		for _, f := range flows {
			n, err := count(ctx, h.js, f.deadStream, f.deadS)
			if err != nil {
				return err
			}
			if n < uint64(len(want[f])) {
				return fmt.Errorf("%s: %d dead letters of %d poison messages", f.sem, n, len(want[f]))
			}
			if err := f.runErr(); err != nil {
				return permanent{err}
			}
			if missing := f.unprocessed(messages, poison); len(missing) > 0 {
				return fmt.Errorf("%s: %d good messages not processed yet, first %v", f.sem, len(missing), missing[:min(len(missing), 5)])
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("the flows did not finish: %v", err)
	}
	if err == nil {
		t.Logf("all dead letters moved and good messages processed %s after the start", time.Since(began).Round(time.Millisecond))
	}
	// A move cut short comes back after the mover's ack wait: a second
	// copy would show by then.
	at("waiting out the mover's ack wait")
	if err := pause(ctx, 2*moverAckWait+2*time.Second); err != nil {
		t.Fatal(err)
	}
	at("checking the dead letters and the Consumers' status")
	for _, f := range flows {
		letters, err := readAll(ctx, h.js, f.deadStream, f.deadS)
		if err != nil {
			t.Fatalf("reading %s: %v", f.deadStream, err)
		}
		if err := f.runErr(); err != nil {
			t.Error(err)
		}
		if missing := f.checkLetters(t, want[f], letters); len(missing) > 0 {
			h.explainMissing(ctx, t, f, want[f], missing)
		}
		f.checkGood(t, messages, poison)
		f.checkHeld(ctx, t, k8s, len(letters))
	}
}

// refuseAtMostOnce: an AtMostOnce Consumer acknowledges nothing, so no
// message is ever given up on; admission refuses a dead-letter Topic for it.
func refuseAtMostOnce(ctx context.Context, t *testing.T, k8s client.Client, ns string) {
	t.Helper()
	c := &hubflowv1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dashboard"},
		Spec: hubflowv1.ConsumerSpec{
			TopicRef:   hubflowv1.TopicReference{Name: "orders"},
			Semantic:   ptr.To(hubflowv1.AtMostOnce),
			DeadLetter: &hubflowv1.DeadLetter{TopicRef: hubflowv1.TopicReference{Name: "dead"}},
		},
	}
	err := k8s.Create(ctx, c)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.deadLetter") {
		t.Errorf("creating an AtMostOnce Consumer with a dead-letter Topic: %v; want it refused, naming spec.deadLetter", err)
	}
}

// burst is how many poison messages each flow gets at once just before the
// mover is killed, so that it is killed with a backlog in hand.
const burst = 100

// killMover gives the mover a backlog (a burst of poison messages the
// consumers refuse at once), stops the manager, and with it the mover,
// once part of the backlog is moved, and starts a new manager a second
// later: the stop lands in a move (fetched, published, not acknowledged)
// or between moves of announcements already handed out, which come back
// to the new mover after its ack wait.
func killMover(ctx context.Context, h *hub, flows []*flow) (string, error) {
	mover, err := h.js.Consumer(ctx, controllers.CaptureStream, "hubflow-mover-"+controllers.DefaultClusterName)
	if err != nil {
		return "", err
	}
	moved := func() uint64 {
		var sum uint64
		for _, f := range flows {
			n, _ := count(ctx, h.js, f.deadStream, f.deadS)
			sum += n
		}
		return sum
	}
	before := moved()
	sent := make(chan error, len(flows))
	for _, f := range flows {
		go func() {
			for k := range burst {
				if err := f.send(ctx, h.js, fmt.Sprintf("%s-burst-%03d", f.ns, k), k%4, poisonTerm); err != nil {
					sent <- err
					return
				}
			}
			sent <- nil
		}()
	}
	for range flows {
		if err := <-sent; err != nil {
			return "", err
		}
	}
	// Stop once a fifth of the burst is moved.
	goal := before + uint64(len(flows)*burst/5)
	for moved() < goal {
		if err := pause(ctx, 5*time.Millisecond); err != nil {
			return "", fmt.Errorf("the mover moved %d letters of the burst: %w", moved()-before, err)
		}
	}
	if err := h.stopManager(); err != nil {
		return "", err
	}
	i, err := mover.Info(ctx)
	if err != nil {
		return "", err
	}
	at := moved() - before
	if err := pause(ctx, time.Second); err != nil {
		return "", err
	}
	if err := h.startManager(); err != nil {
		return "", err
	}
	return fmt.Sprintf("stopped with %d of the burst's %d letters moved, %d announcements handed out unacknowledged, %d not yet handed out; a new manager started a second later",
		at, len(flows)*burst, i.NumAckPending, i.NumPending), nil
}

// killConsumers kills each flow's consumer the moment its handler has
// processed a good message and before the acknowledgement leaves, with
// what else it holds, and starts a new one half a second later: that
// message comes back to the new consumer (ExactlyOnce's dedup record,
// reopened, must skip it).
func killConsumers(ctx context.Context, flows []*flow) (string, error) {
	var what []string
	for _, f := range flows {
		f.crash.Store(true)
		var id string
		select {
		case id = <-f.crashed:
		case <-time.After(10 * time.Second):
			return "", fmt.Errorf("%s: no good message processed in 10s to crash on", f.sem)
		}
		f.mu.Lock()
		held := f.worker.c.Stats()
		f.mu.Unlock()
		if err := f.killWorker(); err != nil {
			return "", err
		}
		if err := pause(ctx, 500*time.Millisecond); err != nil {
			return "", err
		}
		if err := f.startWorker(ctx); err != nil {
			return "", err
		}
		what = append(what, fmt.Sprintf("%s after %d deliveries, %d acknowledged, %s processed and not acknowledged", f.sem, held.Delivered, held.Acked, id))
	}
	return "killed and restarted " + strings.Join(what, ", "), nil
}

// runErr is the first error of a consumer that stopped by itself.
func (f *flow) runErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.runErrs) > 0 {
		return f.runErrs[0]
	}
	return nil
}

// unprocessed lists the good messages no handler processed yet.
func (f *flow) unprocessed(messages, poison int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var missing []string
	for i := range messages {
		if id := fmt.Sprintf("%s-%05d", f.ns, i); poisonKind(i, messages, poison) == "" && f.processed[id] == 0 {
			missing = append(missing, id)
		}
	}
	return missing
}

// checkLetters: each poison message the source stream holds is in the
// dead-letter stream exactly once, with the right provenance; a good one
// there (its acknowledgement lost maxDeliver times) is there once too.
func (f *flow) checkLetters(t *testing.T, poison map[uint64]stored, letters []stored) (missing []uint64) {
	t.Helper()
	bySeq := map[uint64][]stored{}
	for _, l := range letters {
		seq, err := strconv.ParseUint(l.header.Get(deadletter.HeaderSequence), 10, 64)
		if err != nil {
			t.Errorf("%s: dead letter %d has %s %q", f.sem, l.seq, deadletter.HeaderSequence, l.header.Get(deadletter.HeaderSequence))
			continue
		}
		bySeq[seq] = append(bySeq[seq], l)
	}
	var twice, good []uint64
	reasons := map[string]int{}
	for seq, orig := range poison {
		got := bySeq[seq]
		switch {
		case len(got) == 0:
			missing = append(missing, seq)
			continue
		case len(got) > 1:
			twice = append(twice, seq)
		}
		reasons[got[0].header.Get(deadletter.HeaderReason)]++
		f.checkProvenance(t, orig, got[0])
	}
	for seq, got := range bySeq {
		if _, ok := poison[seq]; ok {
			continue
		}
		good = append(good, seq)
		if len(got) > 1 {
			twice = append(twice, seq)
		}
	}
	slices.Sort(missing)
	slices.Sort(twice)
	if len(missing) > 0 {
		t.Errorf("%s: %d of %d poison messages are not in the dead-letter Topic: source sequences %v", f.sem, len(missing), len(poison), head(missing))
	}
	if len(twice) > 0 {
		t.Errorf("%s: %d messages are in the dead-letter Topic more than once: source sequences %v", f.sem, len(twice), head(twice))
	}
	t.Logf("%s: %d dead letters for %d poison messages (%v); %d good messages set aside after %d failed deliveries",
		f.sem, len(letters), len(poison), reasons, len(good), maxDeliver)
	return missing
}

// explainMissing says, for each poison message without a dead letter, when
// it was stored and whether the capture stream holds the server's
// announcement of it: none means the announcement was never captured; one
// means the mover did not move it.
func (h *hub) explainMissing(ctx context.Context, t *testing.T, f *flow, poison map[uint64]stored, missing []uint64) {
	t.Helper()
	captured, err := readAll(ctx, h.js, controllers.CaptureStream, "")
	if err != nil {
		t.Logf("reading the capture stream: %v", err)
		return
	}
	announced := map[uint64][]string{}
	for _, m := range captured {
		a, err := deadletter.ParseAdvisory(m.subject, m.data)
		if err != nil || a.Stream != f.stream {
			continue
		}
		announced[a.StreamSeq] = append(announced[a.StreamSeq], fmt.Sprintf("%s after %d deliveries, captured %s", a.Reason, a.Deliveries, m.time.UTC().Format(clock)))
	}
	for _, seq := range head(missing) {
		orig := poison[seq]
		h.mu.Lock()
		heard := h.heard[fmt.Sprintf("%s:%d", f.stream, seq)]
		h.mu.Unlock()
		t.Logf("%s: no dead letter for %s (%s, source sequence %d, stored %s); the capture stream holds %d announcement(s) of it: %v; the test's own subscription heard %v",
			f.sem, orig.header.Get(idHeader), orig.header.Get(poisonHeader), seq, orig.time.UTC().Format(clock), len(announced[seq]), announced[seq], heard)
	}
}

func (f *flow) checkProvenance(t *testing.T, orig, letter stored) {
	t.Helper()
	id := orig.header.Get(idHeader)
	want := map[string]string{
		deadletter.HeaderStream:   f.stream,
		deadletter.HeaderSequence: strconv.FormatUint(orig.seq, 10),
		deadletter.HeaderSubject:  orig.subject,
		deadletter.HeaderTopic:    f.ns + "/" + f.topic.Name,
		deadletter.HeaderConsumer: f.ns + "/" + f.cons.Name,
		idHeader:                  id,
		poisonHeader:              orig.header.Get(poisonHeader),
	}
	switch orig.header.Get(poisonHeader) {
	case poisonNak:
		want[deadletter.HeaderReason] = string(deadletter.ReasonMaxDeliveries)
		want[deadletter.HeaderDeliveries] = strconv.Itoa(maxDeliver)
	case poisonTerm:
		want[deadletter.HeaderReason] = string(deadletter.ReasonTerminated)
		want[deadletter.HeaderError] = "poison: order " + id + " has a negative amount"
	}
	if f.sem == hubflowv1.ExactlyOnce {
		want[deadletter.HeaderKey] = id
		want["Hubflow-Original-"+nats.MsgIdHdr] = id
	}
	for name, v := range want {
		if got := letter.header.Get(name); got != v {
			t.Errorf("%s: dead letter of %s (source sequence %d): %s = %q, want %q", f.sem, id, orig.seq, name, got, v)
		}
	}
	if f.sem == hubflowv1.AtLeastOnce {
		if k := letter.header.Get(deadletter.HeaderKey); !strings.HasPrefix(k, fmt.Sprintf("%s:%d:", f.stream, orig.seq)) {
			t.Errorf("%s: dead letter of %s: key %q, want %s:%d:<stored ns>", f.sem, id, k, f.stream, orig.seq)
		}
	}
	if n, err := strconv.Atoi(letter.header.Get(deadletter.HeaderDeliveries)); err != nil || n < 1 || n > maxDeliver {
		t.Errorf("%s: dead letter of %s: %s = %q, want 1..%d", f.sem, id, deadletter.HeaderDeliveries, letter.header.Get(deadletter.HeaderDeliveries), maxDeliver)
	}
	if string(letter.data) != string(orig.data) {
		t.Errorf("%s: dead letter of %s carries %q, want %q", f.sem, id, letter.data, orig.data)
	}
}

// checkGood: AtLeastOnce processed every good message at least once,
// ExactlyOnce exactly once.
func (f *flow) checkGood(t *testing.T, messages, poison int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var missing, twice []string
	calls := 0
	for i := range messages {
		if poisonKind(i, messages, poison) != "" {
			continue
		}
		id := fmt.Sprintf("%s-%05d", f.ns, i)
		n := f.processed[id]
		calls += n
		switch {
		case n == 0:
			missing = append(missing, id)
		case n > 1 && f.sem == hubflowv1.ExactlyOnce:
			twice = append(twice, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: %d good messages never processed: %v", f.sem, len(missing), head(missing))
	}
	if len(twice) > 0 {
		t.Errorf("%s: %d good messages processed more than once: %v", f.sem, len(twice), head(twice))
	}
	t.Logf("%s: %d good messages, %d handler calls processed them", f.sem, messages-poison, calls)
}

// checkHeld: the Consumer's status counts its dead letters.
func (f *flow) checkHeld(ctx context.Context, t *testing.T, k8s client.Client, n int) {
	t.Helper()
	err := until(ctx, 30*time.Second, func() error {
		var c hubflowv1.Consumer
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(f.cons), &c); err != nil {
			return err
		}
		if dl := c.Status.DeadLetter; dl == nil || dl.Held != int64(n) {
			return fmt.Errorf("status.deadLetter %+v, want %d held", dl, n)
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s: %v", f.sem, err)
	}
}

func head[T any](s []T) []T { return s[:min(len(s), 20)] }
