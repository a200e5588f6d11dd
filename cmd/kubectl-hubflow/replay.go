package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// replay asks the manager to replay a Consumer's dead letters by setting
// the replay annotation, and waits until the manager removes it. The
// manager does the work: the plugin needs no NATS access.
func replay(ctx context.Context, c client.Client, ns string, o options, out io.Writer) error {
	request := o.sequences
	if request == "" {
		request = "all"
	}
	var cons hubflowv1.Consumer
	key := client.ObjectKey{Namespace: ns, Name: o.consumer}
	if err := c.Get(ctx, key, &cons); err != nil {
		return fmt.Errorf("reading Consumer %s/%s: %w", ns, o.consumer, err)
	}
	if cons.Spec.DeadLetter == nil {
		return fmt.Errorf("Consumer %s/%s declares no spec.deadLetter: it has no dead letters to replay", ns, o.consumer)
	}
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, hubflowv1.ReplayDeadLettersAnnotation, request)
	if err := c.Patch(ctx, &cons, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("asking for the replay: %w", err)
	}
	fmt.Fprintf(out, "asked the manager to replay dead letters of Consumer %s/%s (%s) from Topic %s into Topic %s\n",
		ns, o.consumer, request, cons.Spec.DeadLetter.TopicRef.Name, cons.Spec.TopicRef.Name)
	if o.wait <= 0 {
		return nil
	}
	deadline := time.Now().Add(o.wait)
	for {
		if err := c.Get(ctx, key, &cons); err != nil {
			return err
		}
		if _, pending := cons.Annotations[hubflowv1.ReplayDeadLettersAnnotation]; !pending {
			fmt.Fprintf(out, "done: kubectl describe consumer %s shows how many were replayed (event DeadLettersReplayed, or DeadLetterReplayFailed)\n", o.consumer)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager has not carried out the replay within %s; the request stays on the Consumer (annotation %s) and is carried out when the manager can: check its events and the manager's log",
				o.wait, hubflowv1.ReplayDeadLettersAnnotation)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
