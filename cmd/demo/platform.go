package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testhub"
	"github.com/hubflow/hubflow/internal/testnats"
)

// platform is everything the demo runs: the control plane (two child
// processes, bound to 127.0.0.1), the NATS cluster and the manager (both in
// this process).
type platform struct {
	dir     string
	env     *testenv.Env
	cluster *testnats.Cluster
	manager *testhub.Manager
}

func startPlatform(ctx context.Context) (*platform, error) {
	dir, err := os.MkdirTemp("", "hubflow-demo-")
	if err != nil {
		return nil, err
	}
	p := &platform{dir: dir}

	start := time.Now()
	progress("starting kube-apiserver and etcd on 127.0.0.1 (binaries from bin/k8s-%s)", testenv.KubernetesVersion)
	if p.env, err = testenv.Start(); err != nil {
		return p, err
	}
	fmt.Printf("    API server %s, CRDs installed (%s)\n", p.env.Config.Host, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	progress("starting a 3-node NATS JetStream cluster on 127.0.0.1")
	if p.cluster, err = testnats.StartCluster(filepath.Join(dir, "nats")); err != nil {
		return p, err
	}
	fmt.Printf("    %s (%s)\n", p.cluster.URL(), time.Since(start).Round(time.Millisecond))

	progress("starting the hubflow manager")
	p.manager, err = testhub.Start(p.env.Config, p.env.Scheme, p.cluster.URL(), controllers.Options{
		ResyncInterval: 10 * time.Minute, ObserveInterval: 2 * time.Second, MaxConcurrentReconciles: 4,
		// The dead-letter announcements are kept like the acknowledged Topics.
		DeadLetterReplicas: 3,
	})
	return p, err
}

// stop ends everything in reverse order and removes the demo's files, so a
// second run starts clean and nothing is left running.
func (p *platform) stop() {
	if p.manager != nil {
		_ = p.manager.Stop()
	}
	if p.cluster != nil {
		p.cluster.Stop()
	}
	if p.env != nil {
		_ = p.env.Stop()
	}
	_ = os.RemoveAll(p.dir)
}

// keepRunning writes a kubeconfig and waits for Ctrl-C.
func keepRunning(ctx context.Context, p *platform) error {
	kubeconfig, err := p.env.Kubeconfig()
	if err != nil {
		return err
	}
	path := filepath.Join(p.dir, "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return err
	}
	kubectl := filepath.Join(testenv.RepoRoot(), "bin", "k8s-"+testenv.KubernetesVersion, "kubectl")
	fmt.Printf(`
Everything keeps running until Ctrl-C. Explore it with:

  export KUBECONFIG=%s
  %s get topics,producers,consumers -n %s
  %s describe topic payments -n %s
  %s get secrets -n %s
  %s get events -n %s --sort-by=.lastTimestamp
  %s get consumer payment-ledger -n %s -o jsonpath='{.status.deadLetter}'

NATS: %s
`, path, kubectl, demoNamespace, kubectl, demoNamespace, kubectl, demoNamespace, kubectl, demoNamespace, kubectl, demoNamespace, p.cluster.URL())
	<-ctx.Done()
	fmt.Println("\nstopping…")
	return nil
}
