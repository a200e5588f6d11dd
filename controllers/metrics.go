package controllers

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// The metrics operators alert on (config/prometheus/rules.yaml uses them).
var (
	objectLabels = []string{"kind", "namespace", "name"}
	readyGauge   = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hubflow_object_ready",
		Help: "1 when the Topic, Producer or Consumer is Ready, 0 when it is not.",
	}, objectLabels)
	failuresTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hubflow_reconcile_failures_total",
		Help: "Reconciles that ended with the object not Ready or not as declared, by the failure's reason.",
	}, []string{"kind", "reason"})
	credentialsExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hubflow_credentials_expiry_timestamp_seconds",
		Help: "When the NATS credentials in the object's binding Secret expire (Unix seconds).",
	}, objectLabels)
	// hubConn is the manager's NATS connection, read by hubConnected.
	hubConn      atomic.Pointer[nats.Conn]
	hubConnected = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hubflow_hub_connected",
		Help: "1 while the manager's connection to the NATS hub is up, 0 while it is not.",
	}, func() float64 {
		if nc := hubConn.Load(); nc != nil && nc.IsConnected() {
			return 1
		}
		return 0
	})
)

func init() {
	metrics.Registry.MustRegister(readyGauge, failuresTotal, credentialsExpiry, hubConnected)
}

// kindName is the kind label of a hubflow object.
func kindName(obj client.Object) string {
	switch obj.(type) {
	case *hubflowv1.Topic:
		return "Topic"
	case *hubflowv1.Producer:
		return "Producer"
	case *hubflowv1.Consumer:
		return "Consumer"
	}
	return "Unknown"
}

// reportOutcome tells the world how a reconcile ended: the Ready gauge, the
// failure counter, and on a transition into a failure one Warning event and
// one log line (not one per retry).
func reportOutcome(ctx context.Context, recorder events.EventRecorder, obj client.Object, before, after []metav1.Condition) {
	kind := kindName(obj)
	ready := 0.0
	if isReady(after) {
		ready = 1
	}
	readyGauge.WithLabelValues(kind, obj.GetNamespace(), obj.GetName()).Set(ready)
	now := failure(after)
	if now == nil {
		return
	}
	failuresTotal.WithLabelValues(kind, now.Reason).Inc()
	if warnOnFailure(recorder, obj, before, after) {
		ctrl.LoggerFrom(ctx).Info("not ready or not as declared", "condition", now.Type, "reason", now.Reason, "message", now.Message)
	}
}

// forgetObject drops the per-object series of an object that is gone.
func forgetObject(kind string, key client.ObjectKey) {
	readyGauge.DeleteLabelValues(kind, key.Namespace, key.Name)
	credentialsExpiry.DeleteLabelValues(kind, key.Namespace, key.Name)
}

func recordCredentialsExpiry(obj client.Object, expires time.Time) {
	credentialsExpiry.WithLabelValues(kindName(obj), obj.GetNamespace(), obj.GetName()).Set(float64(expires.Unix()))
}
