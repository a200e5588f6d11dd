package topology

import (
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/manifests"
	"github.com/hubflow/hubflow/internal/testenv"
)

// objects are the three lists Build and Status take.
type objects struct {
	topics    []hubflowv1.Topic
	producers []hubflowv1.Producer
	consumers []hubflowv1.Consumer
}

// samples decodes config/samples/<file> into ns, with the statuses a
// healthy hub without auth would write.
func samples(t *testing.T, ns string, files ...string) objects {
	t.Helper()
	var o objects
	for _, file := range files {
		us, err := manifests.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			u.SetNamespace(ns)
			var into any
			switch u.GetKind() {
			case "Topic":
				o.topics = append(o.topics, hubflowv1.Topic{})
				into = &o.topics[len(o.topics)-1]
			case "Producer":
				o.producers = append(o.producers, hubflowv1.Producer{})
				into = &o.producers[len(o.producers)-1]
			case "Consumer":
				o.consumers = append(o.consumers, hubflowv1.Consumer{})
				into = &o.consumers[len(o.consumers)-1]
			default:
				t.Fatalf("%s: unexpected kind %s", file, u.GetKind())
			}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
				t.Fatal(err)
			}
		}
	}
	o.healthy()
	return o
}

// healthy fills the statuses the operator writes once everything is Ready:
// semantics resolved against the Topic, effective semantics weakened by the
// producers, a small lag.
func (o objects) healthy() {
	topicSem := map[string]hubflowv1.DeliverySemantic{}
	for i := range o.topics {
		t := &o.topics[i]
		topicSem[t.Namespace+"/"+t.Name] = t.Spec.Semantic
		t.Status.Conditions = ready(true, "Ready", "stream "+t.Namespace+"_"+t.Name+" is ready")
	}
	weakest := map[string]hubflowv1.DeliverySemantic{}
	for i := range o.producers {
		p := &o.producers[i]
		key := p.Namespace + "/" + p.Spec.TopicRef.Name
		sem := topicSem[key]
		if p.Spec.Semantic != nil {
			sem = *p.Spec.Semantic
		}
		p.Status.Semantic = hubflowv1.StatusSemantic(sem)
		p.Status.Conditions = append(ready(true, "Ready", "registered"), withoutAuth())
		if w, ok := weakest[key]; !ok || sem.Strength() < w.Strength() {
			weakest[key] = sem
		}
	}
	for i := range o.topics {
		t := &o.topics[i]
		eff := t.Spec.Semantic
		if w, ok := weakest[t.Namespace+"/"+t.Name]; ok && w.Strength() < eff.Strength() {
			eff = w
		}
		t.Status.EffectiveSemantic = hubflowv1.StatusSemantic(eff)
	}
	for i := range o.consumers {
		c := &o.consumers[i]
		key := c.Namespace + "/" + c.Spec.TopicRef.Name
		sem := topicSem[key]
		if c.Spec.Semantic != nil {
			sem = *c.Spec.Semantic
		}
		eff := sem
		if w, ok := weakest[key]; ok && w.Strength() < eff.Strength() {
			eff = w
		}
		c.Status.Semantic = hubflowv1.StatusSemantic(sem)
		c.Status.EffectiveSemantic = hubflowv1.StatusSemantic(eff)
		c.Status.Lag = &hubflowv1.ConsumerLag{Pending: int64(3 * i), AckPending: int64(i)}
		c.Status.Conditions = append(ready(true, "Ready", "durable ready"), withoutAuth())
	}
}

func ready(ok bool, reason, msg string) []metav1.Condition {
	status := metav1.ConditionTrue
	if !ok {
		status = metav1.ConditionFalse
	}
	return []metav1.Condition{{Type: hubflowv1.ConditionReady, Status: status, Reason: reason, Message: msg}}
}

func withoutAuth() metav1.Condition {
	return metav1.Condition{Type: hubflowv1.ConditionCredentialsIssued, Status: metav1.ConditionFalse, Reason: "HubWithoutAuth",
		Message: "the manager holds no account signing key"}
}

func issued(expires string) metav1.Condition {
	return metav1.Condition{Type: hubflowv1.ConditionCredentialsIssued, Status: metav1.ConditionTrue, Reason: "Issued",
		Message: "binding Secret x-binding holds credentials for NATS user UABC, valid until " + expires + "; they are renewed from 2026-12-07T09:00:00Z"}
}

func setReady(conds []metav1.Condition, ok bool, reason, msg string) []metav1.Condition {
	out := ready(ok, reason, msg)
	for _, c := range conds {
		if c.Type != hubflowv1.ConditionReady {
			out = append(out, c)
		}
	}
	return out
}

// degraded is every sample flow spread over two namespaces, with the
// failures a reader of the picture must spot: a refused durable, a Topic
// that is not Ready, and a Consumer of a Topic that does not exist.
func degraded(t *testing.T) objects {
	shop := samples(t, "shop", "payments.yaml", "notifications.yaml")
	web := samples(t, "web", "monitoring.yaml")
	o := objects{
		topics:    append(shop.topics, web.topics...),
		producers: append(shop.producers, web.producers...),
		consumers: append(shop.consumers, web.consumers...),
	}
	for i := range o.consumers {
		c := &o.consumers[i]
		switch c.Name {
		case "fraud-scoring":
			c.Status.Conditions = setReady(c.Status.Conditions, false, "HubRejected",
				"JetStream refused the durable: consumer ack policy can not be updated (10012)")
			c.Status.EffectiveSemantic = hubflowv1.SemanticNone
		case "activity-archiver", "activity-dashboard":
			c.Status.Conditions = setReady(c.Status.Conditions, false, "TopicNotReady", `Topic "site-activity" is not Ready`)
			c.Status.EffectiveSemantic = hubflowv1.SemanticNone
		case "payment-ledger":
			c.Status.Conditions = append(ready(true, "Ready", "durable ready"), issued("2026-12-08T10:30:00Z"))
		}
	}
	for i := range o.topics {
		if o.topics[i].Name == "site-activity" {
			o.topics[i].Status.Conditions = ready(false, "HubUnreachable", "cannot reach the hub at nats://hub:4222: connection refused")
			o.topics[i].Status.EffectiveSemantic = hubflowv1.SemanticNone
		}
	}
	orphan := hubflowv1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "click-counter"},
		Spec: hubflowv1.ConsumerSpec{TopicRef: hubflowv1.TopicReference{Name: "clicks"}}}
	orphan.Status.Semantic = hubflowv1.SemanticNone
	orphan.Status.EffectiveSemantic = hubflowv1.SemanticNone
	orphan.Status.Conditions = ready(false, "TopicNotFound", `Topic "clicks" not found`)
	o.consumers = append(o.consumers, orphan)
	return o
}
