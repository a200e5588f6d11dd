package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/topology"
)

// writePicture draws the demo namespace's flows as `kubectl hubflow graph`
// does, into path, from the objects as the operator left them.
func writePicture(ctx context.Context, k8s client.Client, path string) error {
	var topics hubflowv1.TopicList
	var producers hubflowv1.ProducerList
	var consumers hubflowv1.ConsumerList
	for _, l := range []client.ObjectList{&topics, &producers, &consumers} {
		if err := k8s.List(ctx, l, client.InNamespace(demoNamespace)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := topology.SVG(f, topology.Build(topics.Items, producers.Items, consumers.Items)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("\nThe flows as a picture (kubectl hubflow graph): %s\n", path)
	return nil
}
