package semantic

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// DefaultDuplicateWindow is an ExactlyOnce Topic's window when none is declared.
const DefaultDuplicateWindow = 2 * time.Minute

// unlimited is how the server stores an unset count or size limit; compiling
// to it keeps a freshly read stream equal to the desired one.
const unlimited = -1

// Stream compiles a Topic into the stream that backs it (design contract):
// limits retention for every semantic (workqueue and interest retention
// forget message ids, which ExactlyOnce's dedup needs after a restart); Old
// discard only for AtMostOnce, New otherwise so a full stream refuses a
// publish instead of silently evicting; a duplicate window for ExactlyOnce.
func Stream(t *hubflowv1.Topic) jetstream.StreamConfig {
	sem := TopicSemantic(t)
	cfg := jetstream.StreamConfig{
		Name:        StreamName(t.Namespace, t.Name),
		Description: "hubflow Topic " + Owner(t.Namespace, t.Name),
		Subjects:    TopicSubjects(t),
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    int(max(t.Spec.Replicas, 1)),
		MaxMsgs:     unlimited,
		MaxBytes:    unlimited,
		MaxMsgSize:  unlimited,
		Discard:     discard(sem, t.Spec.Discard),
		Metadata:    map[string]string{OwnerKey: Owner(t.Namespace, t.Name)},
	}
	if t.Spec.Storage == hubflowv1.MemoryStorage {
		cfg.Storage = jetstream.MemoryStorage
	}
	if r := t.Spec.Retention; r != nil {
		if r.MaxAge != nil {
			cfg.MaxAge = r.MaxAge.Duration
		}
		if r.MaxBytes != nil {
			cfg.MaxBytes = r.MaxBytes.Value()
		}
		if r.MaxMessages != nil {
			cfg.MaxMsgs = *r.MaxMessages
		}
		if r.MaxMessageSize != nil {
			cfg.MaxMsgSize = int32(r.MaxMessageSize.Value())
		}
	}
	if sem == hubflowv1.ExactlyOnce {
		cfg.Duplicates = DuplicateWindow(t)
	}
	return cfg
}

// DuplicateWindow is how long an ExactlyOnce Topic remembers message ids;
// zero for the other semantics, which promise no deduplication.
func DuplicateWindow(t *hubflowv1.Topic) time.Duration {
	if TopicSemantic(t) != hubflowv1.ExactlyOnce {
		return 0
	}
	if t.Spec.DuplicateWindow != nil {
		return t.Spec.DuplicateWindow.Duration
	}
	return DefaultDuplicateWindow
}

func discard(sem hubflowv1.DeliverySemantic, declared hubflowv1.DiscardPolicy) jetstream.DiscardPolicy {
	switch declared {
	case hubflowv1.DiscardOld:
		return jetstream.DiscardOld
	case hubflowv1.DiscardNew:
		return jetstream.DiscardNew
	}
	if sem == hubflowv1.AtMostOnce {
		return jetstream.DiscardOld
	}
	return jetstream.DiscardNew
}
