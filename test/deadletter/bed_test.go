package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/deadletter"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testdiag"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testnats"
	"github.com/hubflow/hubflow/pkg/binding"
	"github.com/hubflow/hubflow/pkg/hubflow"
)

// The test's messages say what the worker does with them: a good one is
// processed, "nak" fails every delivery (the server gives up after
// maxDeliver), "term" is refused as poison (hubflow.Poison).
const (
	poisonHeader = "Test-Poison"
	idHeader     = "Test-Id"
	poisonNak    = "nak"
	poisonTerm   = "term"
)

// The durable's limits: a message failing every delivery dies after
// maxDeliver deliveries, about maxDeliver seconds after it is first read.
const (
	maxDeliver      = 3
	sourceAckWait   = time.Second
	moverAckWait    = 2 * time.Second
	hubReplicas     = 3
	workerParallel  = 4
	publishAttempt  = 2 * time.Second
	consumerDrain   = 2 * time.Second
	workerStopGrace = 10 * time.Second
)

// DLQ_SABOTAGE=no-dedup runs the ExactlyOnce consumers without their dedup
// record: the message processed when a consumer is killed is processed
// again by the next, and the test must fail saying so.

// size is how many messages each flow publishes and how many of them are
// poison: DLQ_MESSAGES (2000 by default; `make test-deadletter-long` runs
// 10,000) and DLQ_POISON (one in fifty by default, half of each kind).
func size(t *testing.T) (messages, poison int) {
	t.Helper()
	messages, poison = 2000, 0
	if v := os.Getenv("DLQ_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("DLQ_MESSAGES=%q: want a number of at least 100", v)
		}
		messages = n
	}
	poison = max(messages/50, 4)
	if v := os.Getenv("DLQ_POISON"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > messages/2 {
			t.Fatalf("DLQ_POISON=%q: want a number between 2 and half of the messages", v)
		}
		poison = n
	}
	return messages, poison
}

// hub is the test bed: a control plane, a three-node JetStream cluster, the
// manager (restartable) and the test's own connection to the hub.
type hub struct {
	env     *testenv.Env
	cluster *testnats.Cluster
	js      jetstream.JetStream
	opts    controllers.Options

	mu  sync.Mutex
	mgr *testhub.Manager
	// heard is every announcement the test's own subscription received,
	// by "<stream>:<sequence>", to tell an announcement the server never
	// sent from one the capture stream did not store.
	heard map[string][]string
}

func startHub(t *testing.T) *hub {
	t.Helper()
	if os.Getenv("DLQ_VERBOSE") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	cluster := testnats.StartTestCluster(t)
	h := &hub{env: env, cluster: cluster, js: testnats.Connect(t, cluster.URL()), opts: controllers.Options{
		ResyncInterval: time.Minute, ObserveInterval: time.Second, MaxConcurrentReconciles: 2,
		DeadLetterReplicas: hubReplicas, DeadLetterAckWait: moverAckWait,
	}}
	if err := h.startManager(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.stopManager(); err != nil {
			t.Error(err)
		}
	})
	h.heard = map[string][]string{}
	for _, subject := range deadletter.CaptureSubjects {
		sub, err := h.js.Conn().Subscribe(subject, func(m *nats.Msg) {
			a, err := deadletter.ParseAdvisory(m.Subject, m.Data)
			if err != nil {
				return
			}
			h.mu.Lock()
			key := fmt.Sprintf("%s:%d", a.Stream, a.StreamSeq)
			h.heard[key] = append(h.heard[key], fmt.Sprintf("%s after %d deliveries, heard %s", a.Reason, a.Deliveries, time.Now().UTC().Format("15:04:05.000")))
			h.mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	return h
}

func (h *hub) startManager() error {
	mgr, err := testhub.Start(h.env.Config, h.env.Scheme, h.cluster.URL(), h.opts)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.mgr = mgr
	h.mu.Unlock()
	return nil
}

// stopManager stops the manager; a manager that does not stop within
// stopGrace is an error, with what it was stuck in.
func (h *hub) stopManager() error {
	h.mu.Lock()
	mgr := h.mgr
	h.mgr = nil
	h.mu.Unlock()
	if mgr == nil {
		return nil
	}
	return testdiag.Within(stopGrace, "stopping the manager", func() { _ = mgr.Stop() })
}

// stopGrace bounds the calls no context reaches: a manager's graceful
// shutdown (30s at most) and a nats-server's.
const stopGrace = 90 * time.Second

// streamLeader is the node leading stream, if one does now.
func (h *hub) streamLeader(stream string) *testnats.Server {
	return h.cluster.StreamLeader(testnats.GlobalAccount, stream)
}

// killNode stops the node pick chooses, keeps it down for downtime, starts
// it again on its ports and store, and waits until every one of streams
// has a leader. It says what the node led when it was stopped.
func (h *hub) killNode(ctx context.Context, pick func() *testnats.Server, downtime time.Duration, streams []string) (string, error) {
	var node *testnats.Server
	for node = pick(); node == nil; node = pick() {
		if err := pause(ctx, 20*time.Millisecond); err != nil {
			return "", fmt.Errorf("no node to kill: %w", err)
		}
	}
	name := node.Server().Name()
	var led []string
	if node.Server().JetStreamIsLeader() {
		led = append(led, "meta")
	}
	for _, s := range streams {
		if node.Server().JetStreamIsStreamLeader(testnats.GlobalAccount, s) {
			led = append(led, s)
		}
	}
	if err := testdiag.Within(stopGrace, "stopping nats-server "+name, node.Stop); err != nil {
		return "", err
	}
	if err := pause(ctx, downtime); err != nil {
		return "", err
	}
	var err error
	for try := 1; try <= 3; try++ {
		if werr := testdiag.Within(stopGrace, "restarting nats-server "+name, func() { err = node.Restart() }); werr != nil {
			return "", werr
		}
		if err == nil {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("restarting %s: %w", name, err)
	}
	for _, s := range streams {
		for h.streamLeader(s) == nil {
			if err := pause(ctx, 20*time.Millisecond); err != nil {
				return "", fmt.Errorf("stream %s has no leader after %s came back: %w", s, name, err)
			}
		}
	}
	return fmt.Sprintf("stopped %s (leading %s) for %s, restarted it", name, strings.Join(led, ", "), downtime), nil
}

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// flow is one semantic's Topic, dead-letter Topic and Consumer, with the
// workers that read it and what they processed.
type flow struct {
	sem                       hubflowv1.DeliverySemantic
	ns                        string
	topic, dead               *hubflowv1.Topic
	cons                      *hubflowv1.Consumer
	stream, deadStream, deadS string // source stream, dead-letter stream and subject
	binding                   binding.Binding
	dedupPath                 string // ExactlyOnce's dedup record, kept across workers

	published atomic.Int64 // messages acknowledged by the source stream
	// crash, when armed, makes the next good message the handler processes
	// cut the consumer's connection before its acknowledgement leaves.
	crash   atomic.Bool
	crashed chan string // the id of that message

	mu        sync.Mutex
	processed map[string]int // good message id -> handler calls that processed it
	worker    *worker
	runErrs   []error                 // of workers that stopped without being killed
	stats     []hubflow.ConsumerStats // of the workers killed
}

func newFlow(t *testing.T, sem hubflowv1.DeliverySemantic) *flow {
	ns := "dlq-" + strings.ToLower(string(sem))
	f := &flow{sem: sem, ns: ns, processed: map[string]int{}, dedupPath: t.TempDir() + "/dedup", crashed: make(chan string, 1)}
	f.topic = &hubflowv1.Topic{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
		Spec:       hubflowv1.TopicSpec{Semantic: sem, Replicas: hubReplicas, Storage: hubflowv1.FileStorage},
	}
	// The dead-letter Topic has the source's semantic: for AtLeastOnce it
	// has no duplicate window, so a move cut short is found by the mover's
	// scan alone.
	f.dead = &hubflowv1.Topic{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dead"},
		Spec:       hubflowv1.TopicSpec{Semantic: sem, Replicas: hubReplicas, Storage: hubflowv1.FileStorage},
	}
	md := int32(maxDeliver)
	f.cons = &hubflowv1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing"},
		Spec: hubflowv1.ConsumerSpec{
			TopicRef:   hubflowv1.TopicReference{Name: "orders"},
			MaxDeliver: &md,
			AckWait:    &metav1.Duration{Duration: sourceAckWait},
			Backoff:    []metav1.Duration{{Duration: sourceAckWait}, {Duration: sourceAckWait}},
			DeadLetter: &hubflowv1.DeadLetter{TopicRef: hubflowv1.TopicReference{Name: "dead"}},
		},
	}
	return f
}

// declare creates the flow's objects and waits until the Consumer is Ready
// and says where its dead letters go; then it reads its binding.
func (f *flow) declare(ctx context.Context, t *testing.T, k8s client.Client) {
	t.Helper()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{f.topic, f.dead, f.cons} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	f.stream = semantic.StreamName(f.ns, "orders")
	err := until(ctx, time.Minute, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(f.cons), f.cons); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(f.cons.Status.Conditions, hubflowv1.ConditionReady) {
			return fmt.Errorf("consumer not Ready: %+v", f.cons.Status.Conditions)
		}
		dl := f.cons.Status.DeadLetter
		if dl == nil || dl.Subject == "" || dl.StreamName == "" || f.cons.Status.Binding == nil {
			return fmt.Errorf("status.deadLetter %+v, binding %+v", dl, f.cons.Status.Binding)
		}
		f.deadStream, f.deadS = dl.StreamName, dl.Subject
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", f.sem, err)
	}
	var s corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: f.cons.Status.Binding.Name}, &s); err != nil {
		t.Fatal(err)
	}
	if f.binding, err = binding.Decode(s.Data); err != nil {
		t.Fatal(err)
	}
}

// handle is the workload: it counts each good message it processes and
// fails or refuses the poison ones.
func (f *flow) handle(_ context.Context, d *hubflow.Delivery) error {
	id := d.Header.Get(idHeader)
	switch d.Header.Get(poisonHeader) {
	case poisonNak:
		return fmt.Errorf("order %s: the ledger is unreachable", id)
	case poisonTerm:
		return hubflow.Poison(fmt.Errorf("order %s has a negative amount", id))
	}
	f.mu.Lock()
	f.processed[id]++
	w := f.worker
	f.mu.Unlock()
	if w != nil && f.crash.CompareAndSwap(true, false) {
		// The side effect is done; the process dies before it says so.
		w.killed.Store(true)
		w.c.Conn().Close() // a crash, not Close: that would wait for this handler
		f.crashed <- id
	}
	return nil
}

// worker is one running pkg/hubflow consumer of a flow.
type worker struct {
	c      *hubflow.Consumer
	dedup  *hubflow.FileDedup
	done   chan error
	killed atomic.Bool
}

// startWorker starts a consumer process of the flow; an ExactlyOnce one
// opens the dedup record its predecessor left.
func (f *flow) startWorker(ctx context.Context) error {
	opts := []hubflow.ConsumerOption{
		hubflow.WithLogger(slog.New(slog.DiscardHandler)),
		hubflow.WithConcurrency(workerParallel),
		hubflow.WithDrainTimeout(consumerDrain),
		// The least pull expiry that works: the client's heartbeat is a
		// fifth of it and the server wants at least 500ms.
		hubflow.WithPullExpiry(2500 * time.Millisecond),
	}
	w := &worker{done: make(chan error, 1)}
	if f.sem == hubflowv1.ExactlyOnce && os.Getenv("DLQ_SABOTAGE") != "no-dedup" {
		d, err := hubflow.OpenFileDedup(f.dedupPath, false)
		if err != nil {
			return err
		}
		w.dedup = d
		opts = append(opts, hubflow.WithDedup(d))
	}
	c, err := hubflow.NewConsumer(ctx, f.binding, opts...)
	if err != nil {
		if w.dedup != nil {
			_ = w.dedup.Close()
		}
		return err
	}
	w.c = c
	go func() {
		err := c.Run(context.WithoutCancel(ctx), f.handle)
		if !w.killed.Load() {
			f.mu.Lock()
			f.runErrs = append(f.runErrs, fmt.Errorf("%s consumer stopped by itself: %v", f.sem, err))
			f.mu.Unlock()
		}
		w.done <- err
	}()
	f.mu.Lock()
	f.worker = w
	f.mu.Unlock()
	return nil
}

// killWorker ends the running consumer the hard way, its connection cut
// with whatever it holds unacknowledged, as a killed process.
func (f *flow) killWorker() error {
	f.mu.Lock()
	w := f.worker
	f.worker = nil
	f.mu.Unlock()
	if w == nil {
		return nil
	}
	w.killed.Store(true)
	w.c.Conn().Close() // a crash: Close would finish the deliveries in hand
	var err error
	select {
	case <-w.done:
	case <-time.After(workerStopGrace):
		err = fmt.Errorf("%s consumer's Run did not return %s after its connection closed", f.sem, workerStopGrace)
	}
	f.mu.Lock()
	f.stats = append(f.stats, w.c.Stats())
	f.mu.Unlock()
	if w.dedup != nil {
		err = errors.Join(err, w.dedup.Close())
	}
	return err
}

// poisonKind is what message i of n is: every stride-th one is poison,
// alternately failing every delivery and refused.
func poisonKind(i, n, poison int) string {
	stride := n / poison
	if i%stride != stride/2 || i/stride >= poison {
		return ""
	}
	if (i/stride)%2 == 0 {
		return poisonNak
	}
	return poisonTerm
}

// publish sends n messages, paced to take at least spread, each retried
// until the stream acknowledges it (an ExactlyOnce one under its message
// id, so a retry is stored once; an AtLeastOnce retry may be stored twice,
// and each stored copy is a message of its own).
func (f *flow) publish(ctx context.Context, js jetstream.JetStream, n, poison int, spread time.Duration) error {
	start := time.Now()
	for i := range n {
		if err := f.send(ctx, js, fmt.Sprintf("%s-%05d", f.ns, i), i%4, poisonKind(i, n, poison)); err != nil {
			return err
		}
		f.published.Add(1)
		if due := start.Add(spread * time.Duration(i+1) / time.Duration(n)); time.Until(due) > 0 {
			if err := pause(ctx, time.Until(due)); err != nil {
				return err
			}
		}
	}
	return nil
}

// send publishes one order on subject r<route> and waits until the stream
// has it, trying again after a failed attempt.
func (f *flow) send(ctx context.Context, js jetstream.JetStream, id string, route int, poison string) error {
	m := nats.NewMsg(fmt.Sprintf("%s.orders.r%d", f.ns, route))
	m.Data = []byte("order " + id)
	m.Header.Set(idHeader, id)
	if poison != "" {
		m.Header.Set(poisonHeader, poison)
	}
	if f.sem == hubflowv1.ExactlyOnce {
		m.Header.Set(nats.MsgIdHdr, id)
	}
	for {
		actx, cancel := context.WithTimeout(ctx, publishAttempt)
		_, err := js.PublishMsg(actx, m, jetstream.WithExpectStream(f.stream))
		cancel()
		if err == nil {
			return nil
		}
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("publishing %s: %w", id, err)
		}
	}
}

// stored is one message as a stream holds it.
type stored struct {
	seq     uint64
	subject string
	header  nats.Header
	data    []byte
	time    time.Time // when the stream stored it
}

// readAll reads every message of stream on subject (all when empty),
// trying again for a while when the read fails: the test's own connection
// sees the faults too (a stream leader moving, a node reconnecting).
func readAll(ctx context.Context, js jetstream.JetStream, stream, subject string) ([]stored, error) {
	var out []stored
	err := until(ctx, 30*time.Second, func() error {
		var err error
		out, err = readOnce(ctx, js, stream, subject)
		return err
	})
	return out, err
}

func readOnce(ctx context.Context, js jetstream.JetStream, stream, subject string) ([]stored, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	var opts []jetstream.StreamInfoOpt
	if subject != "" {
		opts = append(opts, jetstream.WithSubjectFilter(subject))
	}
	info, err := s.Info(ctx, opts...)
	if err != nil {
		return nil, err
	}
	total := info.State.Msgs
	if subject != "" {
		total = info.State.Subjects[subject]
	}
	if total == 0 {
		return nil, nil
	}
	cfg := jetstream.OrderedConsumerConfig{}
	if subject != "" {
		cfg.FilterSubjects = []string{subject}
	}
	oc, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var out []stored
	for uint64(len(out)) < total {
		batch, err := oc.Fetch(512, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			out = append(out, stored{seq: md.Sequence.Stream, subject: m.Subject(), header: m.Headers(), data: m.Data(), time: md.Timestamp})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("stream %s: read %d of %d messages, then nothing came", stream, len(out), total)
		}
	}
	return out, nil
}

// count is how many messages of stream are on subject.
func count(ctx context.Context, js jetstream.JetStream, stream, subject string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// permanent marks an error waiting cannot cure.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// until calls check until it succeeds, returns a permanent error or within
// has passed, returning its last error then.
func until(ctx context.Context, within time.Duration, check func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if errors.As(err, new(permanent)) || time.Now().After(deadline) {
			return err
		}
		if perr := pause(ctx, 100*time.Millisecond); perr != nil {
			return errors.Join(err, perr)
		}
	}
}

// dump writes what the hub and the cluster hold about the flows, so a
// failure explains itself.
func (h *hub) dump(ctx context.Context, t *testing.T, flows []*flow) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	streamLine := func(name string) {
		s, err := h.js.Stream(ctx, name)
		if err != nil {
			t.Logf("dump: stream %s: %v", name, err)
			return
		}
		i := s.CachedInfo()
		t.Logf("dump: stream %s: %d msgs, seq %d..%d, %d subjects, cluster %s",
			name, i.State.Msgs, i.State.FirstSeq, i.State.LastSeq, i.State.NumSubjects, clusterLine(i.Cluster))
	}
	consumerLine := func(stream, durable string) {
		c, err := h.js.Consumer(ctx, stream, durable)
		if err != nil {
			t.Logf("dump: durable %s/%s: %v", stream, durable, err)
			return
		}
		i := c.CachedInfo()
		t.Logf("dump: durable %s/%s: pending %d, ack pending %d, redelivered %d, waiting %d, delivered stream seq %d, ack floor stream seq %d, cluster %s",
			stream, durable, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting,
			i.Delivered.Stream, i.AckFloor.Stream, clusterLine(i.Cluster))
	}
	for i, n := range h.cluster.Nodes {
		t.Logf("dump: node %d %s running %v", i, n.URL(), n.Server() != nil)
	}
	streamLine(controllers.CaptureStream)
	consumerLine(controllers.CaptureStream, "hubflow-mover-"+controllers.DefaultClusterName)
	for _, f := range flows {
		streamLine(f.stream)
		streamLine(f.deadStream)
		consumerLine(f.stream, semantic.DurableName(f.cons))
		var c hubflowv1.Consumer
		if err := h.env.Client.Get(ctx, client.ObjectKeyFromObject(f.cons), &c); err != nil {
			t.Logf("dump: consumer %s/%s: %v", f.ns, f.cons.Name, err)
		} else {
			status, _ := json.Marshal(c.Status)
			t.Logf("dump: consumer %s/%s status %s", f.ns, c.Name, status)
		}
		f.mu.Lock()
		stats := append([]hubflow.ConsumerStats(nil), f.stats...)
		if f.worker != nil {
			stats = append(stats, f.worker.c.Stats())
		}
		f.mu.Unlock()
		t.Logf("dump: %s workers' stats (killed first): %+v", f.sem, stats)
	}
}

func clusterLine(c *jetstream.ClusterInfo) string {
	if c == nil {
		return "none"
	}
	var peers []string
	for _, p := range c.Replicas {
		peers = append(peers, fmt.Sprintf("%s(current %v, lag %d)", p.Name, p.Current, p.Lag))
	}
	return fmt.Sprintf("leader %q, replicas %s", c.Leader, strings.Join(peers, " "))
}
