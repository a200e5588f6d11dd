package controllers

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/deadletter"
)

// syncDeadLetter fills in where a serving Consumer's dead letters go and
// how many wait there, and carries out a replay its annotation asks for.
// A dead-letter Topic that cannot take letters leaves the Consumer serving
// (Ready, not Synced): the letters wait in the capture stream meanwhile.
func (r *ConsumerReconciler) syncDeadLetter(ctx context.Context, c *hubflowv1.Consumer, cfg jetstream.ConsumerConfig, conds conditions) error {
	if c.Spec.DeadLetter == nil {
		c.Status.DeadLetter = nil
		return nil
	}
	topic, stream, subject, err := r.deadLetters.destination(ctx, c)
	status := &hubflowv1.DeadLetterStatus{Topic: topic}
	if c.Status.DeadLetter != nil && c.Status.DeadLetter.Topic == topic {
		status.Held = c.Status.DeadLetter.Held
	}
	c.Status.DeadLetter = status
	if err != nil {
		c.Status.Undeliverable = fmt.Sprintf("a message this consumer gives up on waits in stream %s, for up to %s and while its source stream holds it, until dead-letter Topic %s can take it",
			CaptureStream, captureMaxAge, topic)
		conds.failed(true, ReasonDeadLetterTopicNotReady, "%v: messages this consumer gives up on wait in stream %s until it can take them", err, CaptureStream)
		return nil
	}
	status.StreamName, status.Subject = stream, subject
	c.Status.Undeliverable = deadLetterSummary(cfg.MaxDeliver, topic, subject)
	if v, ok := c.Annotations[hubflowv1.ReplayDeadLettersAnnotation]; ok {
		if err := r.replayDeadLetters(ctx, c, status, v); err != nil {
			return err
		}
	}
	// The count is a report about the flow, not the flow: one that cannot
	// be had now keeps the last figure, and the Consumer its conditions.
	if held, err := r.deadLetters.held(ctx, stream, subject); err == nil {
		status.Held = held
	} else {
		ctrl.LoggerFrom(ctx).V(1).Info("dead letters not counted; the last count stays", "stream", stream, "error", err.Error())
	}
	return nil
}

// replayDeadLetters carries out a replay request, then removes the
// annotation so it is carried out once. A request that cannot be read is
// removed with a Warning; one the hub fails stays and is retried.
func (r *ConsumerReconciler) replayDeadLetters(ctx context.Context, c *hubflowv1.Consumer, dl *hubflowv1.DeadLetterStatus, request string) error {
	sel, err := deadletter.ParseSelection(request)
	if err != nil {
		r.recorder.Eventf(c, nil, corev1.EventTypeWarning, ReasonReplayFailed, "Replay", "annotation %s: %v; it is removed", hubflowv1.ReplayDeadLettersAnnotation, err)
		return r.dropReplayRequest(ctx, c)
	}
	n, err := r.deadLetters.replay(ctx, c, dl, sel)
	if err != nil {
		r.recorder.Eventf(c, nil, corev1.EventTypeWarning, ReasonReplayFailed, "Replay",
			"replayed %d dead letter(s), then: %v; the request stays and is tried again", n, err)
		return err
	}
	r.recorder.Eventf(c, nil, corev1.EventTypeNormal, ReasonDeadLettersReplayed, "Replay",
		"replayed %d dead letter(s) from Topic %s into Topic %s (request %q)", n, dl.Topic, c.Spec.TopicRef.Name, request)
	return r.dropReplayRequest(ctx, c)
}

func (r *ConsumerReconciler) dropReplayRequest(ctx context.Context, c *hubflowv1.Consumer) error {
	patch := client.MergeFrom(c.DeepCopy())
	updated := c.DeepCopy()
	delete(updated.Annotations, hubflowv1.ReplayDeadLettersAnnotation)
	if err := r.client.Patch(ctx, updated, patch); err != nil {
		return client.IgnoreNotFound(err)
	}
	delete(c.Annotations, hubflowv1.ReplayDeadLettersAnnotation)
	return nil
}
