package semantic

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// startJetStream runs an in-process nats-server with JetStream on a free port.
func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// The compiled configs are what a real server accepts, and reading them back
// shows no drift: server-filled defaults are not mistaken for changes. This
// is what keeps the reconciler from writing to JetStream on every resync.
func TestCompiledConfigsRoundTripThroughTheServer(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	topics := []*hubflowv1.Topic{
		topic(hubflowv1.AtMostOnce, func(s *hubflowv1.TopicSpec) {
			s.Storage = hubflowv1.MemoryStorage
			s.Retention = &hubflowv1.RetentionLimits{MaxAge: dur(time.Minute)}
		}),
		topic(hubflowv1.AtLeastOnce, func(s *hubflowv1.TopicSpec) {
			s.Retention = &hubflowv1.RetentionLimits{MaxBytes: ptr(resource.MustParse("64Mi")), MaxMessageSize: ptr(resource.MustParse("1Mi"))}
		}),
		topic(hubflowv1.ExactlyOnce, func(s *hubflowv1.TopicSpec) {
			s.DuplicateWindow = dur(5 * time.Minute)
			s.Retention = &hubflowv1.RetentionLimits{MaxAge: dur(24 * time.Hour), MaxMessages: ptr(int64(1000))}
		}),
	}
	for i, tp := range topics {
		tp.Name = []string{"activity", "notifications", "payments"}[i]
		sem := tp.Spec.Semantic
		t.Run(string(sem), func(t *testing.T) {
			want := Stream(tp)
			s, err := js.CreateStream(ctx, want)
			if err != nil {
				t.Fatalf("server refused the compiled stream: %v", err)
			}
			if ch := StreamChanges(want, s.CachedInfo().Config); len(ch) != 0 {
				t.Errorf("fresh stream reads back as drifted: %v", ch)
			}
			for _, c := range []*hubflowv1.Consumer{
				consumer(),
				consumer(func(s *hubflowv1.ConsumerSpec) {
					s.DurableName = "filtered"
					s.FilterSubjects = []string{tp.Namespace + "." + tp.Name + ".eu"}
					if sem != hubflowv1.AtMostOnce {
						s.MaxDeliver = ptr(int32(3))
						s.AckWait = dur(5 * time.Second)
						s.Backoff = []metav1.Duration{{Duration: 20 * time.Second}}
					}
				}),
			} {
				cfg, err := Consumer(tp, c, sem)
				if err != nil {
					t.Fatal(err)
				}
				cons, err := js.CreateConsumer(ctx, want.Name, cfg)
				if err != nil {
					t.Fatalf("server refused the compiled consumer %s: %v", cfg.Durable, err)
				}
				if ch := ConsumerChanges(cfg, cons.CachedInfo().Config); len(ch) != 0 {
					t.Errorf("fresh consumer %s reads back as drifted: %v", cfg.Durable, ch)
				}
			}
		})
	}
}
