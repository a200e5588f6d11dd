package controllers_test

import (
	"strings"
	"testing"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

// longName is a valid Kubernetes name (DNS subdomain, labels of at most 63)
// of n characters.
func longName(n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 && b.Len()%64 == 63 {
			b.WriteByte('.')
			continue
		}
		b.WriteByte('a')
	}
	s := b.String()
	return s[:len(s)-1] + "z" // a label never ends in a dot
}

// Names JetStream or Kubernetes could not hold are refused at admission,
// with a message that names the field; the longest accepted ones work.
func TestNamesTooLongAreRefusedAtAdmission(t *testing.T) {
	ns := namespace(t)
	refused := func(obj interface {
		GetName() string
	}, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("a %d-character name was accepted", len(obj.GetName()))
			return
		}
		if !strings.Contains(err.Error(), "metadata.name") {
			t.Errorf("the refusal does not name the field: %v", err)
		}
	}

	tooLong := newTopic(ns, longName(192), hubflowv1.AtLeastOnce)
	refused(tooLong, k8s.Create(ctx, tooLong))
	longest := newTopic(ns, longName(191), hubflowv1.AtLeastOnce)
	create(t, longest)
	ready(t, longest)
	if got := len(semantic.StreamName(strings.Repeat("n", 63), longest.Name)); got > 255 {
		t.Errorf("the longest stream name is %d bytes", got)
	}

	p := newProducer(ns, longName(246), longest.Name)
	refused(p, k8s.Create(ctx, p))
	c := newConsumer(ns, longName(246), longest.Name)
	refused(c, k8s.Create(ctx, c))
	c.Spec.BindingSecretName = "short-binding"
	create(t, c)
	ready(t, c)
}
