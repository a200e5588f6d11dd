package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/semantic"
)

// shownSemantic is the semantic status reports for a Producer or Consumer
// whose own cannot be resolved against a Ready Topic: the one it declares,
// else its Topic's, else None. kubectl's SEMANTIC column then says what the
// object asks for even while it fails.
func shownSemantic(topic *hubflowv1.Topic, declared *hubflowv1.DeliverySemantic) hubflowv1.StatusSemantic {
	switch {
	case declared != nil:
		return hubflowv1.StatusSemantic(*declared)
	case topic != nil:
		return hubflowv1.StatusSemantic(semantic.TopicSemantic(topic))
	}
	return hubflowv1.SemanticNone
}

// delivered is the effective semantic status reports: what the flow gets
// end to end while it is Ready, None while it is not, since nothing is
// delivered through it then. A refused edit keeps Ready (the old stream or
// durable serves), and so keeps its effective semantic.
func delivered(effective hubflowv1.StatusSemantic, conds []metav1.Condition) hubflowv1.StatusSemantic {
	if !isReady(conds) || effective == "" {
		return hubflowv1.SemanticNone
	}
	return effective
}
