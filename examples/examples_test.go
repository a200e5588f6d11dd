// Package examples runs each sample flow's example producer and consumer as
// a workload would: built binaries reading the bindings the operator would
// write for config/samples, against an in-process JetStream server.
package examples

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hubflow/hubflow/internal/testkube"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/runtime"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/manifests"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testnats"
	"github.com/hubflow/hubflow/pkg/binding"
)

const namespace = "demo"

func TestExamplesRunTheSampleFlows(t *testing.T) {
	srv, err := testnats.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	js := testnats.Connect(t, srv.URL())
	root := t.TempDir()
	durables := deploySamples(t, js, srv.URL(), root)
	bin := t.TempDir()

	for _, tc := range []struct {
		flow, consumer             string
		producerArgs, consumerArgs []string
		want                       string // in the consumer's output
	}{
		{"monitoring", "activity-dashboard", []string{"-n", "50", "-rate", "1000"}, []string{"-every", "200ms"}, "page views: map[/"},
		{"notifications", "email-sender", []string{"-n", "5"}, nil, `sent "welcome" to user4@example.com`},
		{"payments", "payment-ledger", []string{"-n", "20"}, []string{"-state", filepath.Join(t.TempDir(), "ledger")}, "booked pay-000019: 119 cents"},
	} {
		t.Run(tc.flow, func(t *testing.T) {
			env := append(os.Environ(), "SERVICE_BINDING_ROOT="+root)
			prodBin := build(t, bin, tc.flow, "producer")
			consBin := build(t, bin, tc.flow, "consumer")
			var consOut testkube.SyncBuffer
			cons := exec.Command(consBin, tc.consumerArgs...)
			cons.Env, cons.Stdout, cons.Stderr = env, &consOut, &consOut
			if err := cons.Start(); err != nil {
				t.Fatal(err)
			}
			defer cons.Process.Kill()
			d := durables[tc.consumer]
			// The dashboard starts from new messages: publish once it pulls.
			waitFor(t, "the consumer to pull", func() bool { return info(js, d).NumWaiting > 0 })

			prod := exec.Command(prodBin, tc.producerArgs...)
			prod.Env = env
			if out, err := prod.CombinedOutput(); err != nil {
				t.Fatalf("producer: %v\n%s", err, out)
			}
			waitFor(t, "the consumer to process everything", func() bool {
				i := info(js, d)
				return i.NumPending == 0 && i.NumAckPending == 0 && strings.Contains(consOut.String(), tc.want)
			})
			// A graceful stop: SIGTERM drains and exits 0.
			if err := cons.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cons.Wait(); err != nil {
				t.Errorf("consumer did not stop cleanly: %v\n%s", err, consOut.String())
			}
		})
	}
}

type durable struct{ stream, name string }

func info(js jetstream.JetStream, d durable) *jetstream.ConsumerInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, d.stream, d.name)
	if err != nil {
		return &jetstream.ConsumerInfo{NumPending: 1}
	}
	return c.CachedInfo()
}

// deploySamples does what the operator does for config/samples in
// namespace demo: streams, durables, and one binding directory per Producer
// and Consumer under root, named after the object.
func deploySamples(t *testing.T, js jetstream.JetStream, url, root string) map[string]durable {
	t.Helper()
	ctx := context.Background()
	topics := map[string]*hubflowv1.Topic{}
	var producers []*hubflowv1.Producer
	var consumers []*hubflowv1.Consumer
	for _, file := range []string{"monitoring.yaml", "notifications.yaml", "payments.yaml"} {
		objs, err := manifests.ReadFile(filepath.Join("..", "config", "samples", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range objs {
			u.SetNamespace(namespace)
			var into any
			switch u.GetKind() {
			case "Topic":
				tp := &hubflowv1.Topic{}
				topics[u.GetName()], into = tp, tp
			case "Producer":
				p := &hubflowv1.Producer{}
				producers, into = append(producers, p), p
			case "Consumer":
				c := &hubflowv1.Consumer{}
				consumers, into = append(consumers, c), c
			}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tp := range topics {
		if _, err := js.CreateStream(ctx, semantic.Stream(tp)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range producers {
		tp := topics[p.Spec.TopicRef.Name]
		sem, err := semantic.Resolve(semantic.TopicSemantic(tp), p.Spec.Semantic)
		if err != nil {
			t.Fatal(err)
		}
		pol, err := semantic.Producer(tp, p, sem)
		if err != nil {
			t.Fatal(err)
		}
		mount(t, filepath.Join(root, p.Name), binding.Binding{
			Role: binding.RoleProducer, URL: url, Stream: semantic.Stream(tp).Name, Subjects: pol.Subjects,
			Semantic: string(sem), WaitForAck: pol.WaitForAck, MessageID: pol.MessageID, AckTimeout: pol.AckTimeout,
			Retries: pol.Retries, RetryWait: pol.RetryWait, DuplicateWindow: pol.DuplicateWindow,
		})
	}
	durables := map[string]durable{}
	for _, c := range consumers {
		tp := topics[c.Spec.TopicRef.Name]
		sem, err := semantic.Resolve(semantic.TopicSemantic(tp), c.Spec.Semantic)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := semantic.Consumer(tp, c, sem)
		if err != nil {
			t.Fatal(err)
		}
		stream := semantic.Stream(tp).Name
		if _, err := js.CreateConsumer(ctx, stream, cfg); err != nil {
			t.Fatal(err)
		}
		pol := semantic.ConsumerClientPolicy(sem, cfg)
		mount(t, filepath.Join(root, c.Name), binding.Binding{
			Role: binding.RoleConsumer, URL: url, Stream: stream, Durable: cfg.Durable, Semantic: string(sem),
			Ack: string(pol.Ack), AckWait: pol.AckWait, RedeliveryDelays: pol.RedeliveryDelays,
			MaxDeliver: pol.MaxDeliver, IdempotencyKey: pol.IdempotencyKey,
		})
		durables[c.Name] = durable{stream: stream, name: cfg.Durable}
	}
	return durables
}

func mount(t *testing.T, dir string, b binding.Binding) {
	t.Helper()
	if err := b.Write(dir); err != nil {
		t.Fatal(err)
	}
}

func build(t *testing.T, dir, flow, role string) string {
	t.Helper()
	out := filepath.Join(dir, flow+"-"+role)
	cmd := exec.Command("go", "build", "-o", out, "./"+flow+"/"+role)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s %s: %v\n%s", flow, role, err, b)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
