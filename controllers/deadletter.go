package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/deadletter"
	"github.com/hubflow/hubflow/internal/semantic"
)

// How dead letters are captured and moved. The server announces each
// message a durable gives up on (deadletter.CaptureSubjects); a stream
// stores those announcements, so one made while no manager runs waits for
// the next, and a durable of this cluster's mover reads them one by one:
// fetch the original from its stream, publish it to the Consumer's
// dead-letter Topic under a message id of its own, then acknowledge the
// announcement. A crash between the publish and the acknowledgement
// redelivers the announcement: the dead-letter stream drops the second
// publish within its duplicate window, and past it the mover looks for the
// dead letter before publishing again. So each original gets one copy.
const (
	// CaptureStream is shared by every hubflow cluster of the account: the
	// server allows one stream per subject. hubflow creates it when a
	// Consumer first declares a dead-letter Topic and never deletes it.
	CaptureStream = "HUBFLOW_DEAD_LETTER_ADVISORIES"
	// captureMaxAge bounds how long an announcement waits for a mover.
	captureMaxAge = 7 * 24 * time.Hour
	// DefaultDeadLetterAckWait is how long the mover has for one message
	// before its announcement is delivered again.
	DefaultDeadLetterAckWait = 30 * time.Second
	// deadLetterRetry: a dead letter that cannot be moved yet (the
	// dead-letter Topic missing, the hub refusing) is tried again after it.
	deadLetterRetry = 5 * time.Second
	// deadLetterEventEvery rate-limits the Warning event per Consumer.
	deadLetterEventEvery = time.Minute
	// deadLetterClockSkew: how far the servers of one NATS cluster may
	// disagree on the time, when the mover looks for an earlier move.
	deadLetterClockSkew = 2 * time.Second
)

var (
	deadLettersTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hubflow_dead_letters_total",
		Help: "Messages moved to a Consumer's dead-letter Topic, by why the Consumer gave up on them (MaxDeliveries, Terminated).",
	}, []string{"namespace", "consumer", "reason"})
	deadLettersLost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hubflow_dead_letters_lost_total",
		Help: "Messages a Consumer gave up on that its stream no longer held when hubflow came to move them (aged out or deleted first).",
	}, []string{"namespace", "consumer"})
)

func init() { metrics.Registry.MustRegister(deadLettersTotal, deadLettersLost) }

// deadLetters moves dead letters (a Runnable, on the leader only) and
// answers the Consumer reconciler's questions about them.
type deadLetters struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	client   client.Client
	recorder events.EventRecorder
	cluster  string
	replicas int
	ackWait  time.Duration
	// wakeConsumers asks for a Consumer's reconcile, which refreshes its
	// held count, after a burst of moves.
	wakeConsumers chan<- event.GenericEvent
	// captured: the capture stream and this cluster's mover durable exist.
	captured atomic.Bool
	streams  sync.Map // stream name -> jetstream.Stream
	bursts   burstLog
	// read are the announcements the mover has had from the capture
	// stream: the capture holds those, so the check of a heard one needs no
	// look into it.
	read readSet
}

// readSet remembers announcements by deadletter.Advisory.ID, up to
// maxRead; when full it starts afresh, which only costs the looks it saved.
type readSet struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

const maxRead = 1 << 16

func (r *readSet) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil || len(r.ids) >= maxRead {
		r.ids = make(map[string]struct{})
	}
	r.ids[id] = struct{}{}
}

func (r *readSet) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ids[id]
	return ok
}

func newDeadLetters(nc *nats.Conn, c client.Client, recorder events.EventRecorder, cluster string, replicas int, ackWait time.Duration, wake chan<- event.GenericEvent) (*deadLetters, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if ackWait <= 0 {
		ackWait = DefaultDeadLetterAckWait
	}
	return &deadLetters{nc: nc, js: js, client: c, recorder: recorder, cluster: cluster, replicas: max(replicas, 1),
		ackWait: ackWait, wakeConsumers: wake, bursts: burstLog{every: deadLetterEventEvery}}, nil
}

// moverDurable is this cluster's durable on the capture stream: two
// clusters sharing the account each read every announcement, and each
// moves those of its own Consumers.
func (d *deadLetters) moverDurable() string { return "hubflow-mover-" + d.cluster }

// ensureCapture creates the capture stream and the mover's durable if they
// are missing. A capture stream that exists is used as it is, whoever made
// it: it is shared by the account's clusters.
func (d *deadLetters) ensureCapture(ctx context.Context) error {
	if d.captured.Load() {
		return nil
	}
	_, err := d.js.Stream(ctx, CaptureStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = d.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        CaptureStream,
			Description: "hubflow: the server's announcements of messages durables gave up on, kept until hubflow moves each to its dead-letter Topic",
			Subjects:    deadletter.CaptureSubjects,
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    d.replicas,
			MaxAge:      captureMaxAge,
			Discard:     jetstream.DiscardOld,
			Metadata:    map[string]string{semantic.OwnerKey: "hubflow dead-letter capture", semantic.ClusterKey: d.cluster},
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // another manager made it meanwhile
		}
	}
	if err != nil {
		return fmt.Errorf("dead-letter capture stream %s: %w", CaptureStream, err)
	}
	_, err = d.js.CreateOrUpdateConsumer(ctx, CaptureStream, jetstream.ConsumerConfig{
		Durable:       d.moverDurable(),
		Description:   "hubflow: moves this cluster's dead letters",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.ackWait,
		MaxDeliver:    -1,
		MaxAckPending: 256,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Metadata:      map[string]string{semantic.OwnerKey: "hubflow dead-letter mover", semantic.ClusterKey: d.cluster},
	})
	if err != nil {
		return fmt.Errorf("dead-letter mover durable %s: %w", d.moverDurable(), err)
	}
	d.captured.Store(true)
	return nil
}

// NeedLeaderElection: one mover per cluster at a time.
func (d *deadLetters) NeedLeaderElection() bool { return true }

// Start moves dead letters until ctx ends. It reads the capture stream
// only once a Consumer declared a dead-letter Topic (ensureCapture ran) or
// the capture stream exists from an earlier run.
func (d *deadLetters) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("dead-letters")
	go d.bursts.flushEvery(ctx, d.recorder, d.wakeConsumers)
	go d.hear(ctx, log)
	// A capture stream from an earlier run means there may be letters to
	// move. Otherwise the first Consumer with a dead-letter Topic creates it
	// (ensureCapture); until then the mover asks the server nothing.
	if _, err := d.js.Stream(ctx, CaptureStream); err == nil {
		if err := d.ensureCapture(ctx); err != nil {
			log.Error(err, "setting up the dead-letter mover; the first Consumer with a dead-letter Topic tries again")
		}
	}
	for ctx.Err() == nil {
		if !d.captured.Load() || testHooks.moverStopped.Load() {
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		if err := d.run(ctx, log); err != nil && ctx.Err() == nil {
			log.Error(err, "dead-letter mover stopped; starting again")
			// ensureCapture, from the next Consumer reconcile or here,
			// recreates what went missing.
			d.captured.Store(false)
			sleep(ctx, time.Second)
			if err := d.ensureCapture(ctx); err != nil {
				log.Error(err, "setting up the dead-letter mover again")
			}
		}
	}
	return nil
}

// moveWorkers move announcements side by side: each move waits on three
// round trips (fetch, publish, acknowledgement), and announcements are
// independent of each other.
const moveWorkers = 8

// run reads the mover's durable until ctx ends or the durable fails.
func (d *deadLetters) run(ctx context.Context, log logr.Logger) error {
	cons, err := d.js.Consumer(ctx, CaptureStream, d.moverDurable())
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	work := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range moveWorkers {
		wg.Go(func() {
			for msg := range work {
				if testHooks.moverStopped.Load() {
					_ = msg.NakWithDelay(time.Second) // handed out when the mover is back
					continue
				}
				d.move(ctx, log, msg)
			}
		})
	}
	defer wg.Wait()
	defer close(work)
	for {
		if testHooks.moverStopped.Load() {
			return nil
		}
		msg, err := it.Next()
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return ctx.Err()
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			continue // disconnected; the iterator resumes on reconnect
		case err != nil:
			return err
		}
		work <- msg
	}
}

// move handles one announcement from the capture stream; every path
// acknowledges it or asks for it again later, never both.
func (d *deadLetters) move(ctx context.Context, log logr.Logger, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.NakWithDelay(deadLetterRetry)
		return
	}
	a, err := deadletter.ParseAdvisory(msg.Subject(), msg.Data())
	if err != nil {
		log.Error(err, "ignoring an announcement the mover cannot read")
		_ = msg.Ack()
		return
	}
	d.read.add(a.ID())
	// A redelivered announcement may have been moved already, possibly
	// longer ago than the dead-letter stream's duplicate window; not before
	// it was stored.
	switch d.moveOne(ctx, a, meta.NumDelivered > 1, meta.Timestamp.Add(-deadLetterClockSkew)) {
	case moveRetry:
		_ = msg.NakWithDelay(deadLetterRetry)
		return
	case movePublished:
		if hook := testHooks.afterDeadLetterPublish.Load(); hook != nil && (*hook)() {
			return // a crash between the publish and the acknowledgement
		}
	}
	if err := msg.DoubleAck(ctx); err != nil {
		log.V(1).Info("announcement not acknowledged; it comes back and the move is found done", "error", err.Error())
	}
}

type moveOutcome int

const (
	moveDone      moveOutcome = iota // nothing to move, or moved earlier
	movePublished                    // the dead letter is stored now
	moveRetry                        // not now: try again later
)

// moveOne moves the message a announces, unless it is not this cluster's
// or, when check is set, a dead letter of it was stored since since.
func (d *deadLetters) moveOne(ctx context.Context, a deadletter.Advisory, check bool, since time.Time) moveOutcome {
	c, ok := d.owner(ctx, a.Stream, a.Consumer)
	if !ok {
		return moveDone // not this cluster's, or a Consumer without a dead-letter Topic
	}
	dlTopic, dlStream, subject, err := d.destination(ctx, c)
	if err != nil {
		d.bursts.problem(c, fmt.Sprintf("cannot move dead letters yet: %v; they wait (for up to %s)", err, captureMaxAge))
		return moveRetry
	}
	orig, err := d.original(ctx, a.Stream, a.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		deadLettersLost.WithLabelValues(c.Namespace, c.Name).Inc()
		d.bursts.problem(c, fmt.Sprintf("message %d of stream %s was gone before it could be moved to dead-letter Topic %s (aged out or deleted)", a.StreamSeq, a.Stream, dlTopic))
		return moveDone
	}
	if err != nil {
		return moveRetry
	}
	src := deadletter.Source{Topic: semantic.Owner(c.Namespace, c.Spec.TopicRef.Name), Consumer: semantic.Owner(c.Namespace, c.Name)}
	letter := deadletter.Letter(subject, src, a, orig)
	if check {
		found, err := d.published(ctx, dlStream, subject, letter.Header.Get(nats.MsgIdHdr), since)
		if err != nil {
			return moveRetry
		}
		if found {
			return moveDone
		}
	}
	if _, err := d.js.PublishMsg(ctx, letter, jetstream.WithExpectStream(dlStream)); err != nil {
		d.bursts.problem(c, fmt.Sprintf("dead-letter Topic %s refused a dead letter: %v; trying again", dlTopic, err))
		return moveRetry
	}
	deadLettersTotal.WithLabelValues(c.Namespace, c.Name, string(a.Reason)).Inc()
	d.bursts.moved(c, dlTopic)
	return movePublished
}

// DeadLetterFallbackAfter is how long after the server's announcement the
// manager checks that the capture stream stored it. The announcement is a
// plain publish: while the capture stream has no leader (a node lost, an
// election) it is stored nowhere. The manager hears each announcement
// itself too; one the capture stream does not hold by then is moved from
// what it heard. One that is held is left to the mover, so each is moved
// by one path.
const DeadLetterFallbackAfter = 5 * time.Second

// fallbackRetries bounds how often a heard announcement that cannot be
// moved yet is tried again (every deadLetterRetry).
const fallbackRetries = 720

// hear subscribes to the announcements while the manager leads.
func (d *deadLetters) hear(ctx context.Context, log logr.Logger) {
	var subs []*nats.Subscription
	for _, subject := range deadletter.CaptureSubjects {
		sub, err := d.nc.Subscribe(subject, func(m *nats.Msg) {
			a, err := deadletter.ParseAdvisory(m.Subject, m.Data)
			if err != nil {
				return
			}
			time.AfterFunc(DeadLetterFallbackAfter, func() { d.fallback(ctx, log, m.Subject, a, 0) })
		})
		if err != nil {
			log.Error(err, "hearing dead-letter announcements; only the capture stream has them", "subject", subject)
			continue
		}
		subs = append(subs, sub)
	}
	<-ctx.Done()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
}

// fallback moves a heard announcement the capture stream does not hold.
func (d *deadLetters) fallback(ctx context.Context, log logr.Logger, subject string, a deadletter.Advisory, attempt int) {
	if ctx.Err() != nil || !d.captured.Load() {
		return
	}
	if d.read.has(a.ID()) {
		return // the mover had it from the capture stream
	}
	if _, ok := d.owner(ctx, a.Stream, a.Consumer); !ok {
		return
	}
	since := a.Time.Add(-deadLetterClockSkew)
	held := false
	err := d.scan(ctx, CaptureStream, subject, &since, false, func(m jetstream.Msg) bool {
		if b, err := deadletter.ParseAdvisory(m.Subject(), m.Data()); err == nil && b.ID() == a.ID() {
			held = true
		}
		return !held
	})
	if err == nil && held {
		return
	}
	outcome := moveRetry
	if err == nil {
		log.Info("the capture stream missed an announcement; moving the dead letter from what the manager heard",
			"stream", a.Stream, "durable", a.Consumer, "sequence", a.StreamSeq)
		outcome = d.moveOne(ctx, a, true, since)
	}
	if outcome == moveRetry && attempt < fallbackRetries {
		time.AfterFunc(deadLetterRetry, func() { d.fallback(ctx, log, subject, a, attempt+1) })
	}
}

// owner is the Consumer that owns durable on stream and declares a
// dead-letter Topic, from the cache.
func (d *deadLetters) owner(ctx context.Context, stream, durable string) (*hubflowv1.Consumer, bool) {
	var list hubflowv1.ConsumerList
	if err := d.client.List(ctx, &list, client.MatchingFields{streamIndex: consumerKey(stream, durable)}); err != nil {
		return nil, false
	}
	for i := range list.Items {
		c := &list.Items[i]
		if c.Spec.DeadLetter != nil && c.Status.StreamName == stream && c.Status.DurableName == durable {
			return c, true
		}
	}
	return nil, false
}

// destination is a Consumer's dead-letter Topic, its stream and the
// Consumer's subject there; an error says why it cannot take letters now.
func (d *deadLetters) destination(ctx context.Context, c *hubflowv1.Consumer) (topic, stream, subject string, err error) {
	name := c.Spec.DeadLetter.TopicRef.Name
	var t hubflowv1.Topic
	if err := d.client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: name}, &t); err != nil {
		if apierrors.IsNotFound(err) {
			return name, "", "", fmt.Errorf("dead-letter Topic %s does not exist", name)
		}
		return name, "", "", err
	}
	if !isReady(t.Status.Conditions) || !t.DeletionTimestamp.IsZero() {
		return name, "", "", fmt.Errorf("dead-letter Topic %s is not ready", name)
	}
	subject, err = deadletter.Subject(semantic.TopicSubjects(&t), semantic.StreamName(c.Namespace, c.Spec.TopicRef.Name), semantic.DurableName(c))
	if err != nil {
		return name, "", "", fmt.Errorf("dead-letter Topic %s %w", name, err)
	}
	return name, semantic.StreamName(t.Namespace, t.Name), subject, nil
}

func (d *deadLetters) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	if s, ok := d.streams.Load(name); ok {
		return s.(jetstream.Stream), nil
	}
	s, err := d.js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	d.streams.Store(name, s)
	return s, nil
}

// original reads the message at seq from its stream.
func (d *deadLetters) original(ctx context.Context, stream string, seq uint64) (deadletter.Original, error) {
	s, err := d.stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return deadletter.Original{}, jetstream.ErrMsgNotFound
	}
	if err != nil {
		return deadletter.Original{}, err
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		d.streams.Delete(stream)
		return deadletter.Original{}, jetstream.ErrMsgNotFound
	}
	if err != nil {
		return deadletter.Original{}, err
	}
	return deadletter.Original{Subject: m.Subject, Sequence: m.Sequence, Header: m.Header, Data: m.Data, Stored: m.Time}, nil
}

// published says whether a message with id is on subject of stream,
// stored since since.
func (d *deadLetters) published(ctx context.Context, stream, subject, id string, since time.Time) (bool, error) {
	found := false
	err := d.scan(ctx, stream, subject, &since, true, func(m jetstream.Msg) bool {
		found = m.Headers().Get(nats.MsgIdHdr) == id
		return !found
	})
	return found, err
}

// scan hands each message on subject of stream (from since, or all) to
// each until it returns false or the stream has no more.
func (d *deadLetters) scan(ctx context.Context, stream, subject string, since *time.Time, headersOnly bool, each func(jetstream.Msg) bool) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, HeadersOnly: headersOnly}
	if since != nil {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, since
	}
	s, err := d.stream(ctx, stream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		d.streams.Delete(stream)
		return err
	}
	if info.State.Subjects[subject] == 0 {
		return nil
	}
	oc, err := d.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return err
	}
	for {
		batch, err := oc.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if !each(m) {
				return nil
			}
			if meta, err := m.Metadata(); err == nil && meta.NumPending == 0 {
				return batch.Error()
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// held counts the dead letters on subject.
func (d *deadLetters) held(ctx context.Context, stream, subject string) (int64, error) {
	s, err := d.stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		d.streams.Delete(stream)
		return 0, err
	}
	return int64(info.State.Subjects[subject]), nil
}

// replay sends the selected dead letters of c back to their source
// subjects in stream order, each removed from the dead-letter Topic once
// the source stream stored it. It returns how many it replayed; a dead
// letter replayed twice (a crash before the removal) carries the same
// message id and the original's idempotency key both times.
func (d *deadLetters) replay(ctx context.Context, c *hubflowv1.Consumer, dl *hubflowv1.DeadLetterStatus, sel deadletter.Selection) (int, error) {
	s, err := d.stream(ctx, dl.StreamName)
	if err != nil {
		return 0, err
	}
	source := semantic.StreamName(c.Namespace, c.Spec.TopicRef.Name)
	n := 0
	var failed error
	err = d.scan(ctx, dl.StreamName, dl.Subject, nil, false, func(m jetstream.Msg) bool {
		meta, err := m.Metadata()
		if err != nil || !sel.Includes(meta.Sequence.Stream) {
			return true
		}
		r, err := deadletter.Replay(dl.StreamName, meta.Sequence.Stream, meta.Timestamp, m.Headers(), m.Data())
		if err == nil {
			_, err = d.js.PublishMsg(ctx, r, jetstream.WithExpectStream(source))
		}
		if err == nil {
			err = s.DeleteMsg(ctx, meta.Sequence.Stream)
		}
		if err != nil {
			failed = fmt.Errorf("dead letter %d: %w", meta.Sequence.Stream, err)
			return false
		}
		n++
		return true
	})
	return n, errors.Join(err, failed)
}

// burstLog rate-limits the Warning events of dead letters: one per
// Consumer per interval, counting the moves in between. Wakes are not
// rate-limited beyond the flush tick: the held count follows within a second.
type burstLog struct {
	every time.Duration
	mu    sync.Mutex
	by    map[client.ObjectKey]*burst
}

type burst struct {
	consumer *hubflowv1.Consumer
	topic    string
	moved    int // since the last event
	problem  string
	wake     bool
	last     time.Time // of the last event
}

func (b *burstLog) entry(c *hubflowv1.Consumer) *burst {
	if b.by == nil {
		b.by = map[client.ObjectKey]*burst{}
	}
	key := client.ObjectKeyFromObject(c)
	e := b.by[key]
	if e == nil {
		e = &burst{}
		b.by[key] = e
	}
	e.consumer = c
	return e
}

func (b *burstLog) moved(c *hubflowv1.Consumer, topic string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entry(c)
	e.moved++
	e.topic, e.wake = topic, true
}

func (b *burstLog) problem(c *hubflowv1.Consumer, msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entry(c).problem = msg
}

// flushEvery, once a second, wakes each Consumer that had a move (its
// held count is refreshed) and emits what happened since its last event,
// if that was long enough ago.
func (b *burstLog) flushEvery(ctx context.Context, recorder events.EventRecorder, wake chan<- event.GenericEvent) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			wakes, due := b.take(now)
			for _, e := range due {
				if e.moved > 0 {
					recorder.Eventf(e.consumer, nil, corev1.EventTypeWarning, ReasonDeadLettered, "DeadLetter",
						"%d message(s) set aside in dead-letter Topic %s", e.moved, e.topic)
				}
				if e.problem != "" {
					recorder.Eventf(e.consumer, nil, corev1.EventTypeWarning, ReasonDeadLetterStuck, "DeadLetter", "%s", e.problem)
				}
			}
			for _, c := range wakes {
				if wake != nil {
					send(ctx, wake, c)
				}
			}
		}
	}
}

// take returns the Consumers to wake and the entries due for an event.
func (b *burstLog) take(now time.Time) (wakes []*hubflowv1.Consumer, due []burst) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.by {
		if e.wake {
			wakes = append(wakes, e.consumer)
			e.wake = false
		}
		if (e.moved == 0 && e.problem == "") || now.Sub(e.last) < b.every {
			continue
		}
		due = append(due, *e)
		e.moved, e.problem, e.last = 0, "", now
	}
	return wakes, due
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// deadLetterSummary is the Undeliverable text of a Consumer with a
// dead-letter Topic.
func deadLetterSummary(maxDeliver int, topic, subject string) string {
	given := "a message the client terminates"
	if maxDeliver > 0 {
		given = fmt.Sprintf("a message that fails %d deliveries, or that the client terminates,", maxDeliver)
	}
	return fmt.Sprintf("%s is moved to dead-letter Topic %s (subject %s); nothing is dropped while the source stream still holds it", given, topic, subject)
}
