package semantic

import (
	"fmt"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// TopicSemantic is a Topic's semantic with the API default applied, for
// objects read before defaulting (tests, older clients).
func TopicSemantic(t *hubflowv1.Topic) hubflowv1.DeliverySemantic {
	if t.Spec.Semantic == "" {
		return hubflowv1.AtLeastOnce
	}
	return t.Spec.Semantic
}

// Resolve is the semantic a Producer or Consumer runs with: the declared one,
// or the Topic's. A declared semantic stronger than the Topic's is refused:
// the Topic cannot keep that promise (ExactlyOnce needs its duplicate window).
func Resolve(topic hubflowv1.DeliverySemantic, declared *hubflowv1.DeliverySemantic) (hubflowv1.DeliverySemantic, error) {
	if declared == nil || *declared == "" {
		return topic, nil
	}
	if declared.Strength() > topic.Strength() {
		return "", &RuleError{
			Reason: ReasonSemanticStrongerThanTopic,
			Field:  "spec.semantic",
			Message: fmt.Sprintf("%s is stronger than the Topic's %s: declare %s or weaker, or raise the Topic's semantic",
				*declared, topic, topic),
		}
	}
	return *declared, nil
}

// Effective is the end-to-end semantic a consumer gets: no stronger than its
// own, and no stronger than the weakest producer publishing to its Topic (an
// AtLeastOnce producer sends no message ids, so even an ExactlyOnce consumer
// may see its retries twice). With no producers registered, it is the
// consumer's own.
func Effective(consumer hubflowv1.DeliverySemantic, producers []hubflowv1.DeliverySemantic) hubflowv1.DeliverySemantic {
	weakest := consumer
	for _, p := range producers {
		if p.Strength() < weakest.Strength() {
			weakest = p
		}
	}
	return weakest
}
