package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/deadletter"
	"github.com/hubflow/hubflow/pkg/binding"
)

// deadLetterResult is what became of the message a consumer's bug
// rejected: set aside once while the bug was in, processed once after the
// fix and the replay, and nothing left behind.
type deadLetterResult struct {
	route   deadLetterRoute
	message int // its number
	// rejected counts the handler calls that rejected it as poison.
	rejected int
	// setAside is how many copies of it the dead-letter Topic held before
	// the replay; left is how many of the consumer's letters it held after.
	setAside, left int
	// processedBefore counts the handler calls that processed it before the
	// replay, processed all of them (counted when the flow ends).
	processedBefore, processed int
	// againBy are the other consumers that handled it a second time: the
	// replay goes to every consumer of the Topic.
	againBy []string
	// replayKey is the idempotency key the consumer saw on the replay,
	// originalKey the one the dead letter recorded for the original.
	replayKey, originalKey string
}

// kept says whether the dead letter went the way the dead-letter contract
// promises.
func (d *deadLetterResult) kept() bool {
	return d.rejected >= 1 && d.setAside == 1 && d.processedBefore == 0 && d.processed == 1 && d.left == 0
}

// setAsideAndReplay shows the message the consumer's bug rejected in the
// dead-letter Topic, with where it came from, then fixes the bug, asks
// hubflow to replay the consumer's dead letters the way a user would (an
// annotation), and waits until the consumer has processed it.
func setAsideAndReplay(ctx context.Context, p *platform, f flow, run *consumerRun, sent int) (*deadLetterResult, error) {
	start := time.Now()
	res := &deadLetterResult{route: *f.deadLetter, message: run.poison}
	k8s := p.env.Client
	key := client.ObjectKey{Namespace: demoNamespace, Name: run.name}
	progress("dead letters: %s terminated message #%d as poison; hubflow sets it aside in Topic %s", run.name, run.poison, res.route.topic)

	var c hubflowv1.Consumer
	held := func(ok func(*hubflowv1.DeadLetterStatus) bool) (*hubflowv1.DeadLetterStatus, error) {
		for {
			if err := k8s.Get(ctx, key, &c); err != nil {
				return nil, err
			}
			if dl := c.Status.DeadLetter; dl != nil && dl.Subject != "" && ok(dl) {
				return dl, nil
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("status.deadLetter %+v: %w", c.Status.DeadLetter, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	dl, err := held(func(dl *hubflowv1.DeadLetterStatus) bool { return dl.Held > 0 })
	if err != nil {
		return res, err
	}
	fmt.Printf("    Consumer %s status.deadLetter: held %d, stream %s, subject %s\n", run.name, dl.Held, dl.StreamName, dl.Subject)

	nc, err := nats.Connect(p.cluster.URL(), nats.Name("hubflow-demo"))
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	stream, err := js.Stream(ctx, dl.StreamName)
	if err != nil {
		return res, err
	}
	count := func() (int, error) {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(dl.Subject))
		if err != nil {
			return 0, err
		}
		return int(info.State.Subjects[dl.Subject]), nil
	}
	if res.setAside, err = count(); err != nil {
		return res, err
	}
	letter, err := stream.GetLastMsgForSubject(ctx, dl.Subject)
	if err != nil {
		return res, err
	}
	fmt.Printf("    stream %s holds %d letter(s) on that subject; the last, sequence %d, carries %q and says where it came from:\n",
		dl.StreamName, res.setAside, letter.Sequence, letter.Data)
	for _, h := range []string{deadletter.HeaderReason, deadletter.HeaderError, deadletter.HeaderTopic, deadletter.HeaderConsumer,
		deadletter.HeaderStream, deadletter.HeaderSequence, deadletter.HeaderDeliveries, deadletter.HeaderKey} {
		fmt.Printf("      %-32s %s\n", h+":", letter.Header.Get(h))
	}

	run.bug.Store(false)
	res.rejected = int(run.rejected.Load())
	run.tally.mu.Lock()
	res.processedBefore = run.tally.seen[run.poison]
	run.tally.mu.Unlock()
	progress("the bug is fixed; replay: kubectl annotate consumer %s %s=all", run.name, hubflowv1.ReplayDeadLettersAnnotation)
	patch := client.MergeFrom(c.DeepCopy())
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[hubflowv1.ReplayDeadLettersAnnotation] = "all"
	if err := k8s.Patch(ctx, &c, patch); err != nil {
		return res, err
	}
	note, err := replayedEvent(ctx, k8s, run.name)
	if err != nil {
		return res, err
	}
	fmt.Printf("    event %s: %s\n", controllers.ReasonDeadLettersReplayed, note)
	if err := run.waitProcessed(ctx, sent, sent); err != nil {
		return res, err
	}
	if dl, err = held(func(dl *hubflowv1.DeadLetterStatus) bool { return dl.Held == 0 }); err != nil {
		return res, err
	}
	if res.left, err = count(); err != nil {
		return res, err
	}
	var replayKey string
	if k := run.replayKey.Load(); k != nil {
		replayKey = *k
	}
	res.replayKey, res.originalKey = replayKey, letter.Header.Get(deadletter.HeaderKey)
	shown := fmt.Sprintf("key %s, not the original's %s (header %s)", replayKey, res.originalKey, binding.IdempotencyKeyHeader)
	if replayKey == res.originalKey {
		shown = "the original's key " + replayKey + " (header " + binding.IdempotencyKeyHeader + "): a consumer that processed the original skips it"
	}
	fmt.Printf("    %s processed message #%d under %s\n", run.name, run.poison, shown)
	fmt.Printf("    status.deadLetter.held %d, %d letter(s) left on the subject (set aside and replayed in %s)\n",
		dl.Held, res.left, time.Since(start).Round(time.Millisecond))
	return res, nil
}

// replayedEvent waits for the event hubflow records when it has replayed
// the consumer's dead letters (after removing the annotation), and returns
// its note.
func replayedEvent(ctx context.Context, k8s client.Client, consumer string) (string, error) {
	for {
		var list eventsv1.EventList
		if err := k8s.List(ctx, &list, client.InNamespace(demoNamespace)); err != nil {
			return "", err
		}
		i := slices.IndexFunc(list.Items, func(e eventsv1.Event) bool {
			return e.Regarding.Name == consumer && e.Reason == controllers.ReasonDeadLettersReplayed
		})
		if i >= 0 {
			return list.Items[i].Note, nil
		}
		select {
		case <-ctx.Done():
			return "", errors.Join(fmt.Errorf("no %s event for Consumer %s", controllers.ReasonDeadLettersReplayed, consumer), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
