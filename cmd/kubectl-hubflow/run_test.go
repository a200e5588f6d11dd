package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/manifests"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testkube"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// TestParse: the command line is checked before anything is contacted.
func TestParse(t *testing.T) {
	cases := []struct {
		args    []string
		want    options
		wantErr error
	}{
		{args: []string{"graph"}, want: options{command: "graph", output: "svg"}},
		{args: []string{"graph", "-n", "shop", "-o", "dot"}, want: options{command: "graph", namespace: "shop", output: "dot"}},
		{args: []string{"-A", "graph", "--output=mermaid"}, want: options{command: "graph", allNamespaces: true, output: "mermaid"}},
		{args: []string{"status", "--namespace", "shop", "--kubeconfig", "/k"}, want: options{command: "status", namespace: "shop", kubeconfig: "/k", output: "svg"}},
		{args: []string{"graph", "-o", "png"}, wantErr: errUsage},
		{args: []string{"status", "-o", "dot"}, wantErr: errUsage},
		{args: []string{"graph", "-n", "a", "-A"}, wantErr: errUsage},
		{args: []string{"draw"}, wantErr: errUsage},
		{args: []string{"replay", "billing", "-n", "shop"}, want: options{command: "replay", consumer: "billing", namespace: "shop", output: "svg", wait: time.Minute}},
		{args: []string{"replay", "billing", "--seq", "3,5", "--wait", "0s"}, want: options{command: "replay", consumer: "billing", sequences: "3,5", output: "svg"}},
		{args: []string{"replay"}, wantErr: errUsage},
		{args: []string{"replay", "a", "b"}, wantErr: errUsage},
		{args: []string{"replay", "billing", "--seq", "x"}, wantErr: errUsage},
		{args: []string{"replay", "billing", "-A"}, wantErr: errUsage},
		{args: []string{"status", "--seq", "3"}, wantErr: errUsage},
		{args: []string{}, wantErr: errUsage},
		{args: []string{"-h"}, wantErr: pflag.ErrHelp},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got, err := parse(tc.args, &bytes.Buffer{})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestGraphAndStatusAgainstAnAPIServer applies the payments sample into one
// namespace and the monitoring sample into another, writes the statuses
// the operator would (one consumer refused, credentials issued to another),
// and runs the plugin against a kubeconfig as kubectl would.
func TestGraphAndStatusAgainstAnAPIServer(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	shop, web := testkube.Namespace(t, c), testkube.Namespace(t, c)
	apply(t, c, shop, "payments.yaml")
	apply(t, c, web, "monitoring.yaml")

	now := metav1.Now()
	cond := func(typ string, ok bool, reason, msg string) metav1.Condition {
		s := metav1.ConditionTrue
		if !ok {
			s = metav1.ConditionFalse
		}
		return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, LastTransitionTime: now}
	}
	readyTopic(t, c, shop, "payments", hubflowv1.ExactlyOnce, cond)
	readyTopic(t, c, shop, "payments-dead-letters", hubflowv1.ExactlyOnce, cond)
	readyTopic(t, c, web, "site-activity", hubflowv1.AtMostOnce, cond)
	setProducer(t, c, shop, "checkout", hubflowv1.ExactlyOnce, cond(hubflowv1.ConditionReady, true, "Ready", "registered"))
	setConsumer(t, c, shop, "payment-ledger", func(s *hubflowv1.ConsumerStatus) {
		s.Semantic, s.EffectiveSemantic = "ExactlyOnce", "ExactlyOnce"
		s.Lag = &hubflowv1.ConsumerLag{Pending: 12, AckPending: 3}
		s.Conditions = []metav1.Condition{cond(hubflowv1.ConditionReady, true, "Ready", "durable ready"),
			cond(hubflowv1.ConditionCredentialsIssued, true, "Issued",
				"binding Secret payment-ledger-binding holds credentials for NATS user UABC, valid until 2099-01-01T00:00:00Z; they are renewed from 2098-12-31T00:00:00Z")}
	})
	setConsumer(t, c, shop, "fraud-scoring", func(s *hubflowv1.ConsumerStatus) {
		s.Semantic, s.EffectiveSemantic = "AtLeastOnce", "None"
		s.Conditions = []metav1.Condition{cond(hubflowv1.ConditionReady, false, "HubRejected",
			"JetStream refused the durable: consumer ack policy can not be updated (10012)")}
	})

	kubeconfig, err := env.KubeconfigFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out, stderr bytes.Buffer
		if err := Run(ctx, append([]string{"--kubeconfig", kubeconfig}, args...), &out, &stderr); err != nil {
			t.Fatalf("kubectl hubflow %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out.String()
	}

	t.Run("graph -n shop -o dot", func(t *testing.T) {
		out := run("graph", "-n", shop, "-o", "dot")
		for _, want := range []string{
			fmt.Sprintf(`"Producer/%s/checkout" -> "Topic/%s/payments" [label="declared ExactlyOnce"];`, shop, shop),
			fmt.Sprintf(`"Topic/%s/payments" -> "Consumer/%s/payment-ledger" [label="declared ExactlyOnce\neffective ExactlyOnce"];`, shop, shop),
			fmt.Sprintf(`"Consumer/%s/fraud-scoring" [label="fraud-scoring\nlag not reported\nNOT READY: HubRejected", color="#c62828"`, shop),
			`lag 12 pending, 3 unacked`,
			fmt.Sprintf(`namespace %s: 3 services, each with one connection to the hub (3 connections).\nWired to each other instead: 2 point-to-point integrations, and a mesh of 3 services grows to 3.`, shop),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %s\n--- output:\n%s", want, out)
			}
		}
		if strings.Contains(out, web) {
			t.Errorf("-n %s shows namespace %s:\n%s", shop, web, out)
		}
	})

	t.Run("graph -A", func(t *testing.T) {
		out := run("graph", "-A", "-o", "mermaid")
		for _, want := range []string{`subgraph`, `"namespace ` + shop + `"`, `"namespace ` + web + `"`, "activity-archiver<br/>lag not reported<br/>NOT READY: Unknown"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %s\n--- output:\n%s", want, out)
			}
		}
	})

	t.Run("graph svg by default", func(t *testing.T) {
		out := run("graph", "-n", web)
		if !strings.HasPrefix(out, "<svg ") || !strings.Contains(out, `id="Topic/`+web+`/site-activity"`) {
			t.Errorf("not the SVG of namespace %s:\n%s", web, out)
		}
	})

	t.Run("status", func(t *testing.T) {
		out := run("status", "-n", shop)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^1 of 5 objects not Ready$`),
			// Not Ready first, with its reason and message.
			regexp.MustCompile(`(?m)^KIND +NAME +READY +REASON +LAG\(PENDING/UNACKED\) +CREDENTIALS +MESSAGE\nConsumer +fraud-scoring +False +HubRejected +- +not issued yet +JetStream refused the durable: consumer ack policy can not …$`),
			regexp.MustCompile(`(?m)^Consumer +payment-ledger +True +- +12/3 +2099-01-01T00:00:00Z \(in \d+d\d+h\) +-$`),
			regexp.MustCompile(`(?m)^Topic +payments +True +- +- +- +-$`),
		} {
			if !want.MatchString(out) {
				t.Errorf("output does not match %s\n--- output:\n%s", want, out)
			}
		}
	})
}

func apply(t *testing.T, c client.Client, ns, file string) {
	t.Helper()
	us, err := manifests.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		u.SetNamespace(ns)
		if err := c.Create(context.Background(), u); err != nil {
			t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

func readyTopic(t *testing.T, c client.Client, ns, name string, eff hubflowv1.DeliverySemantic, cond func(string, bool, string, string) metav1.Condition) {
	t.Helper()
	var o hubflowv1.Topic
	update(t, c, ns, name, &o, func() {
		o.Status.EffectiveSemantic = hubflowv1.StatusSemantic(eff)
		o.Status.Conditions = []metav1.Condition{cond(hubflowv1.ConditionReady, true, "Ready", "stream ready")}
	})
}

func setProducer(t *testing.T, c client.Client, ns, name string, sem hubflowv1.DeliverySemantic, ready metav1.Condition) {
	t.Helper()
	var o hubflowv1.Producer
	update(t, c, ns, name, &o, func() {
		o.Status.Semantic = hubflowv1.StatusSemantic(sem)
		o.Status.Conditions = []metav1.Condition{ready}
	})
}

func setConsumer(t *testing.T, c client.Client, ns, name string, set func(*hubflowv1.ConsumerStatus)) {
	t.Helper()
	var o hubflowv1.Consumer
	update(t, c, ns, name, &o, func() { set(&o.Status) })
}

// update writes obj's status through the status subresource, as the
// operator does.
func update(t *testing.T, c client.Client, ns, name string, obj client.Object, set func()) {
	t.Helper()
	ctx := context.Background()
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatal(err)
	}
	set()
	if err := c.Status().Update(ctx, obj); err != nil {
		t.Fatalf("status of %s/%s: %v", ns, name, err)
	}
}

// TestReplayAsksTheManager: replay sets the annotation the manager carries
// out, waits for the manager to remove it, and refuses a Consumer without
// a dead-letter Topic. No manager runs here, so the wait runs out.
func TestReplayAsksTheManager(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	ns := testkube.Namespace(t, c)
	cons := &hubflowv1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing"},
		Spec: hubflowv1.ConsumerSpec{TopicRef: hubflowv1.TopicReference{Name: "orders"},
			DeadLetter: &hubflowv1.DeadLetter{TopicRef: hubflowv1.TopicReference{Name: "orders-dead"}}},
	}
	plain := &hubflowv1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit"},
		Spec:       hubflowv1.ConsumerSpec{TopicRef: hubflowv1.TopicReference{Name: "orders"}},
	}
	for _, o := range []*hubflowv1.Consumer{cons, plain} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig, err := env.KubeconfigFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Run(ctx, append([]string{"--kubeconfig", kubeconfig, "-n", ns}, args...), &out, &bytes.Buffer{})
		return out.String(), err
	}
	annotation := func() string {
		t.Helper()
		var got hubflowv1.Consumer
		if err := c.Get(ctx, client.ObjectKeyFromObject(cons), &got); err != nil {
			t.Fatal(err)
		}
		return got.Annotations[hubflowv1.ReplayDeadLettersAnnotation]
	}

	out, err := run("replay", "billing", "--seq", "3,5", "--wait", "0s")
	if err != nil || !strings.Contains(out, "from Topic orders-dead into Topic orders") {
		t.Fatalf("replay --seq 3,5: %v\n%s", err, out)
	}
	if got := annotation(); got != "3,5" {
		t.Errorf("annotation %q, want 3,5", got)
	}
	if _, err := run("replay", "billing", "--wait", "1s"); err == nil || !strings.Contains(err.Error(), "has not carried out the replay within 1s") {
		t.Errorf("replay with no manager: %v", err)
	}
	if got := annotation(); got != "all" {
		t.Errorf("annotation %q, want all", got)
	}
	if _, err := run("replay", "audit"); err == nil || !strings.Contains(err.Error(), "declares no spec.deadLetter") {
		t.Errorf("replay of a Consumer without a dead-letter Topic: %v", err)
	}
}
