// Package bench measures hubflow at scale on a local kube-apiserver and an
// in-process nats-server: how much the operator slows a client's creates
// (against the same creates with no controller running, in the same run),
// how fast N Topics and Consumers (and Producers, with
// HUBFLOW_BENCH_PRODUCERS=1) become Ready, how many API-server writes that
// takes, how fast an out-of-band deletion heals, and what an idle hub costs.
// Figures are printed and reported as benchmark metrics; nothing here
// asserts a duration. Run with `make bench`.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/semantic"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testnats"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkHubAtScale runs the whole scenario once per b.N (use -benchtime=1x).
func BenchmarkHubAtScale(b *testing.B) {
	n := envInt("HUBFLOW_BENCH_N", 1000)
	idle := envDuration("HUBFLOW_BENCH_IDLE", time.Minute)
	observe := envDuration("HUBFLOW_BENCH_OBSERVE", 30*time.Second)
	resync := envDuration("HUBFLOW_BENCH_RESYNC", 10*time.Minute)
	kinds := []kind{topicObj, consumerObj}
	if os.Getenv("HUBFLOW_BENCH_PRODUCERS") == "1" {
		kinds = append(kinds, producerObj)
	}
	for range b.N {
		r := runScenario(b, n, kinds, idle, observe, resync)
		b.ReportMetric(r.bareCreate.Seconds(), "creates-no-controller-s")
		b.ReportMetric(r.create.Seconds(), "creates-s")
		b.ReportMetric(r.create.Seconds()/r.bareCreate.Seconds(), "create-ratio")
		b.ReportMetric(r.writesPerObject, "apiserver-writes/object")
		b.ReportMetric(r.raw.Seconds(), "raw-jetstream-s")
		b.ReportMetric(r.allReady.Seconds(), "all-ready-s")
		b.ReportMetric(r.afterLastCreate.Seconds(), "ready-after-last-create-s")
		b.ReportMetric(r.allReady.Seconds()/r.raw.Seconds(), "ratio-vs-raw")
		b.ReportMetric(float64(r.healMedian.Milliseconds()), "heal-median-ms")
		b.ReportMetric(float64(r.healMax.Milliseconds()), "heal-max-ms")
		b.ReportMetric(r.idleJS, "idle-js-req/min")
		b.ReportMetric(r.idleWrites, "idle-apiserver-writes/min")
		b.ReportMetric(r.restart.Seconds(), "restart-reverified-s")
		b.ReportMetric(float64(r.restartWrites), "restart-apiserver-writes")
	}
}

type result struct {
	raw, bareCreate, create, allReady, afterLastCreate, healMedian, healMax, restart time.Duration
	writesPerObject, idleJS, idleWrites                                              float64
	restartWrites                                                                    uint64
}

func runScenario(b *testing.B, n int, kinds []kind, idle, observe, resync time.Duration) result {
	ctrl.SetLogger(logr.Discard())
	if os.Getenv("HUBFLOW_BENCH_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	}
	env, err := testenv.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()

	var r result
	r.raw = rawBaseline(b, n)
	// The watch runs through both creates, so both pay for it alike.
	readyCount := watchReady(b, env)
	r.bareCreate = bareCreates(b, env, n, kinds)

	hub, err := testnats.Start(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Stop()

	// The manager gets the same API-server budget and workers as
	// cmd/manager's defaults (HUBFLOW_BENCH_QPS, _BURST, _WORKERS to change them).
	mcfg := rest.CopyConfig(env.Config)
	mcfg.QPS, mcfg.Burst = float32(envInt("HUBFLOW_BENCH_QPS", 100)), envInt("HUBFLOW_BENCH_BURST", 200)
	mgr, err := testhub.Start(mcfg, env.Scheme, hub.URL(), controllers.Options{
		ResyncInterval: resync, ObserveInterval: observe, MaxConcurrentReconciles: envInt("HUBFLOW_BENCH_WORKERS", 4),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = mgr.Stop() }() // the manager running then: it is restarted below

	// The test's own client creates as fast as the API server takes it.
	ucfg := rest.CopyConfig(env.Config)
	ucfg.QPS, ucfg.Burst = 5000, 5000
	k8s, err := client.New(ucfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	writes := writeCounter(b, env.Config)
	breakdown := writeBreakdown(b, env.Config)
	breakdownBefore := breakdown()
	jsBefore := apiRequests(b, hub)
	writesBefore := writes()

	objects := len(kinds) * n
	start := time.Now()
	lastCreate := createAll(b, k8s, benchNamespace, n, kinds)
	allReady := waitAllReady(b, readyCount, objects)
	r.create = lastCreate.Sub(start)
	r.allReady, r.afterLastCreate = allReady.Sub(start), allReady.Sub(lastCreate)
	b.Logf("N=%d: %d objects (%s) created in %s with the manager running, %s with no controller (%.2fx); all Ready %s after the first create (%s after the last)",
		n, objects, kindNames(kinds), r.create.Round(time.Millisecond), r.bareCreate.Round(time.Millisecond), r.create.Seconds()/r.bareCreate.Seconds(),
		r.allReady.Round(time.Millisecond), r.afterLastCreate.Round(time.Millisecond))
	b.Logf("raw JetStream baseline (same %d streams + %d durables, one client, no Kubernetes): %s; hubflow/raw = %.1fx",
		n, n, r.raw.Round(time.Millisecond), r.allReady.Seconds()/r.raw.Seconds())
	r.writesPerObject = float64(writes()-writesBefore) / float64(objects)
	b.Logf("while converging: %d JetStream API requests, %d API-server writes, the client's creates included (%.1f and %.2f per object)",
		apiRequests(b, hub)-jsBefore, writes()-writesBefore,
		float64(apiRequests(b, hub)-jsBefore)/float64(objects), r.writesPerObject)

	b.Logf("API-server writes while converging: %s", writesSince(breakdownBefore, breakdown()))

	r.healMedian, r.healMax = measureHeal(b, hub, 5)
	b.Logf("out-of-band stream deletion healed: median %s, max %s (5 deletions)", r.healMedian, r.healMax)

	// Let the heal's reconciles and the first observer looks settle, then
	// count what an idle hub costs.
	time.Sleep(observe + 2*time.Second)
	js0, w0, t0, idleBefore := apiRequests(b, hub), writes(), time.Now(), breakdown()
	time.Sleep(idle)
	minutes := time.Since(t0).Minutes()
	r.idleJS = float64(apiRequests(b, hub)-js0) / minutes
	r.idleWrites = float64(writes()-w0) / minutes
	b.Logf("idle for %s: %.1f JetStream API requests/min, %.1f API-server writes/min (observe interval %s, resync interval %s, %d streams)",
		time.Since(t0).Round(time.Second), r.idleJS, r.idleWrites, observe, resync, n)
	if r.idleWrites > 0 {
		b.Logf("API-server writes while idle: %s", writesSince(idleBefore, breakdown()))
	}

	// A manager restart (or a leader change: the new leader starts the same
	// way) re-verifies every object against the hub. Done when each
	// object's controller has reconciled it once more; it should write
	// nothing, since nothing changed.
	if err := mgr.Stop(); err != nil {
		b.Logf("stopping the manager: %v", err)
	}
	reconciled := reconcileCounts(b)
	js1, w1, restartBefore := apiRequests(b, hub), writes(), breakdown()
	start = time.Now()
	mgr, err = testhub.Start(mcfg, env.Scheme, hub.URL(), controllers.Options{
		ResyncInterval: resync, ObserveInterval: observe, MaxConcurrentReconciles: envInt("HUBFLOW_BENCH_WORKERS", 4),
	})
	if err != nil {
		b.Fatal(err)
	}
	for {
		now := reconcileCounts(b)
		done := true
		// The controllers of kinds, in its order (topic, consumer, producer).
		for _, k := range []string{"topic", "consumer", "producer"}[:len(kinds)] {
			if now[k]-reconciled[k] < float64(n) {
				done = false
			}
		}
		if done {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("after a restart, reconciled %v of %d per kind in 10 minutes", now, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.restart = time.Since(start)
	r.restartWrites = writes() - w1
	b.Logf("manager restarted: every object re-verified in %s, %d API-server writes, %d JetStream API requests (%.1f per object)",
		r.restart.Round(time.Millisecond), r.restartWrites, apiRequests(b, hub)-js1, float64(apiRequests(b, hub)-js1)/float64(objects))
	if r.restartWrites > 0 {
		b.Logf("API-server writes after the restart: %s", writesSince(restartBefore, breakdown()))
	}
	return r
}

// reconcileCounts is how many reconciles each controller of this process
// has finished, whatever the result, by kind ("topic", "consumer",
// "producer"), read from controller-runtime's metrics.
func reconcileCounts(b *testing.B) map[string]float64 {
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" {
					counts[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return counts
}

// writesSince lists the writes per verb and resource between two counts.
func writesSince(before, after map[string]float64) string {
	var parts []string
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, d))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// rawBaseline is the floor: the same streams and durables created directly
// with nats.go on a fresh server, eight at a time.
func rawBaseline(b *testing.B, n int) time.Duration {
	srv, err := testnats.Start(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	js := testnats.Connect(b, srv.URL())
	ctx := context.Background()
	start := time.Now()
	parallel(n, 8, func(i int) {
		t := topicObj(benchNamespace, i).(*hubflowv1.Topic)
		if _, err := js.CreateStream(ctx, semantic.Stream(t)); err != nil {
			b.Error(err)
			return
		}
		cfg, _ := semantic.Consumer(t, consumerObj(benchNamespace, i).(*hubflowv1.Consumer), hubflowv1.AtLeastOnce)
		if _, err := js.CreateConsumer(ctx, semantic.StreamName(t.Namespace, t.Name), cfg); err != nil {
			b.Error(err)
		}
	})
	return time.Since(start)
}

const benchNamespace = "default"

// kind makes the i-th object of one kind in a namespace.
type kind func(ns string, i int) client.Object

func topicObj(ns string, i int) client.Object {
	return &hubflowv1.Topic{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("topic-%04d", i)},
		Spec:       hubflowv1.TopicSpec{Semantic: hubflowv1.AtLeastOnce},
	}
}

func consumerObj(ns string, i int) client.Object {
	return &hubflowv1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("consumer-%04d", i)},
		Spec:       hubflowv1.ConsumerSpec{TopicRef: hubflowv1.TopicReference{Name: fmt.Sprintf("topic-%04d", i)}},
	}
}

func producerObj(ns string, i int) client.Object {
	return &hubflowv1.Producer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("producer-%04d", i)},
		Spec:       hubflowv1.ProducerSpec{TopicRef: hubflowv1.TopicReference{Name: fmt.Sprintf("topic-%04d", i)}},
	}
}

func kindNames(kinds []kind) string {
	var names []string
	for _, k := range kinds {
		names = append(names, fmt.Sprintf("%T", k("", 0))[len("*v1alpha1."):]+"s")
	}
	return strings.Join(names, " + ")
}

// createAll creates N of each kind and returns when the last create was
// acknowledged: interleaved (each Topic with its Consumer and Producer), or
// with HUBFLOW_BENCH_ORDER=kind all Topics first, then all Consumers, then
// all Producers, as a tool that applies by kind does. The second is the
// harder case for the operator: every Topic is Ready before anything
// registers with it.
func createAll(b *testing.B, k8s client.Client, ns string, n int, kinds []kind) time.Time {
	ctx := context.Background()
	if os.Getenv("HUBFLOW_BENCH_ORDER") == "kind" {
		for _, k := range kinds {
			parallel(n, 16, func(i int) {
				if err := k8s.Create(ctx, k(ns, i)); err != nil {
					b.Error(err)
				}
			})
		}
		return time.Now()
	}
	parallel(n, 16, func(i int) {
		for _, k := range kinds {
			if err := k8s.Create(ctx, k(ns, i)); err != nil {
				b.Error(err)
			}
		}
	})
	return time.Now()
}

// bareCreates is the baseline of the client's side: the same creates, by
// the same client, with no controller running, in a namespace of their
// own that is emptied again before the manager starts.
func bareCreates(b *testing.B, env *testenv.Env, n int, kinds []kind) time.Duration {
	ucfg := rest.CopyConfig(env.Config)
	ucfg.QPS, ucfg.Burst = 5000, 5000
	k8s, err := client.New(ucfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const ns = "bench-baseline"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	took := createAll(b, k8s, ns, n, kinds).Sub(start)
	for _, o := range []client.Object{&hubflowv1.Topic{}, &hubflowv1.Consumer{}, &hubflowv1.Producer{}} {
		if err := k8s.DeleteAllOf(ctx, o, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
	}
	// No controller ran, so nothing carries a finalizer: they go at once.
	for _, l := range []client.ObjectList{&hubflowv1.TopicList{}, &hubflowv1.ConsumerList{}, &hubflowv1.ProducerList{}} {
		if err := k8s.List(ctx, l, client.InNamespace(ns)); err != nil || meta.LenList(l) > 0 {
			b.Fatalf("baseline objects not deleted: %v, %d left", err, meta.LenList(l))
		}
	}
	return took
}

// watchReady counts the Ready objects from a watch of its own, so waiting
// for them costs the API server no listings while the manager works.
func watchReady(b *testing.B, env *testenv.Env) func() int {
	c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	for _, o := range []client.Object{&hubflowv1.Topic{}, &hubflowv1.Consumer{}, &hubflowv1.Producer{}} {
		if _, err := c.GetInformer(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("the bench's watch did not sync")
	}
	return func() int {
		var topics hubflowv1.TopicList
		var consumers hubflowv1.ConsumerList
		var producers hubflowv1.ProducerList
		// Read-only: no copies, which would cost this process (the
		// manager's) more CPU than the manager itself.
		in := []client.ListOption{client.InNamespace(benchNamespace), client.UnsafeDisableDeepCopy}
		if c.List(ctx, &topics, in...) != nil || c.List(ctx, &consumers, in...) != nil || c.List(ctx, &producers, in...) != nil {
			return 0
		}
		ready := 0
		for _, t := range topics.Items {
			ready += countReady(t.Status.Conditions)
		}
		for _, c := range consumers.Items {
			ready += countReady(c.Status.Conditions)
		}
		for _, p := range producers.Items {
			ready += countReady(p.Status.Conditions)
		}
		return ready
	}
}

func waitAllReady(b *testing.B, readyCount func() int, objects int) time.Time {
	deadline := time.Now().Add(10 * time.Minute)
	var lastLog time.Time
	for {
		now := time.Now()
		ready := readyCount()
		if ready == objects {
			return now
		}
		if os.Getenv("HUBFLOW_BENCH_LOG") != "" && now.Sub(lastLog) > 500*time.Millisecond {
			lastLog = now
			b.Logf("%s ready: %d of %d", now.Format("15:04:05.000"), ready, objects)
		}
		if now.After(deadline) {
			b.Fatalf("only %d of %d objects Ready after 10 minutes", ready, objects)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countReady(conds []metav1.Condition) int {
	if meta.IsStatusConditionTrue(conds, hubflowv1.ConditionReady) {
		return 1
	}
	return 0
}

// measureHeal deletes streams behind hubflow's back and times their return.
func measureHeal(b *testing.B, hub *testnats.Server, times int) (median, worst time.Duration) {
	js := testnats.Connect(b, hub.URL())
	ctx := context.Background()
	var took []time.Duration
	for i := range times {
		name := semantic.StreamName(benchNamespace, fmt.Sprintf("topic-%04d", i*7))
		start := time.Now()
		if err := js.DeleteStream(ctx, name); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := js.Stream(ctx, name); err == nil {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("stream %s not healed in a minute", name)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return took[len(took)/2], took[len(took)-1]
}

func parallel(n, workers int, f func(int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func apiRequests(b *testing.B, s *testnats.Server) uint64 {
	n, err := s.APIRequests()
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// writeCounter reads the API server's own count of mutating requests
// (apiserver_request_total for POST, PUT, PATCH and DELETE) from /metrics.
func writeCounter(b *testing.B, cfg *rest.Config) func() uint64 {
	count := writeBreakdown(b, cfg)
	return func() uint64 {
		var total float64
		for _, v := range count() {
			total += v
		}
		return uint64(total)
	}
}

// writeBreakdown is writeCounter by verb and resource.
func writeBreakdown(b *testing.B, cfg *rest.Config) func() map[string]float64 {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return func() map[string]float64 {
		raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		counts := map[string]float64{}
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "apiserver_request_total{") {
				continue
			}
			mutating := false
			for _, verb := range []string{`verb="POST"`, `verb="PUT"`, `verb="PATCH"`, `verb="DELETE"`} {
				mutating = mutating || strings.Contains(line, verb)
			}
			// Lease renewals of the control plane itself are not the operator's.
			if !mutating || strings.Contains(line, `resource="leases"`) {
				continue
			}
			if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
				counts[label(line, "verb")+" "+label(line, "resource")+"/"+label(line, "subresource")] += v
			}
		}
		return counts
	}
}

func label(line, name string) string {
	i := strings.Index(line, name+`="`)
	if i < 0 {
		return ""
	}
	rest := line[i+len(name)+2:]
	return rest[:strings.IndexByte(rest, '"')]
}
