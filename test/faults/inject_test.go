package faults

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hubflow/hubflow/internal/testnats"
)

// injector carries out producer-side faults one at a time, in the order
// they are fired, so at most one node is down at once and an R3 stream
// keeps its quorum.
type injector struct {
	cluster  *testnats.Cluster
	stream   string
	producer string // connection name of the producer

	queue chan firing
	done  chan struct{}

	mu   sync.Mutex
	log  []string // what happened, for the report
	errs []error  // faults that could not be carried out
	now  string   // what the injector is doing, for a flow out of time

	// stealPort: take a stopped node's client port while it is down, as
	// a process beside the suite can (HUBFLOW_FAULTS_SABOTAGE=steal-port).
	stealPort bool
}

// doing records the injector's current step.
func (in *injector) doing(step string) {
	in.mu.Lock()
	in.now = step
	in.mu.Unlock()
}

// status is the injector's current step and how many faults are done.
func (in *injector) status() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return fmt.Sprintf("%d faults carried out, %d failed, %d queued; now: %s", len(in.log), len(in.errs), len(in.queue), in.now)
}

func newInjector(c *testnats.Cluster, stream, producer string) *injector {
	in := &injector{cluster: c, stream: stream, producer: producer, queue: make(chan firing, 64), done: make(chan struct{})}
	go in.loop()
	return in
}

type firing struct {
	fault
	started chan struct{} // closed once the fault has hit
}

// fire queues f and waits until it has hit (a node is down, a connection
// cut), not until it has healed: publishing goes on through the outage.
func (in *injector) fire(f fault) {
	started := make(chan struct{})
	in.queue <- firing{fault: f, started: started}
	<-started
}

// finish waits for every queued fault, every node running again.
func (in *injector) finish() ([]string, []error) {
	close(in.queue)
	<-in.done
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.log, in.errs
}

func (in *injector) loop() {
	defer close(in.done)
	defer in.doing("finished")
	for f := range in.queue {
		in.doing(f.String())
		var what string
		var err error
		switch f.Kind {
		case killLeader:
			what, err = in.killLeader(f.Downtime, f.started)
		case cutProducer:
			what, err = in.cutProducer()
			close(f.started)
		}
		in.mu.Lock()
		if err != nil {
			in.errs = append(in.errs, fmt.Errorf("%s: %w", f, err))
		} else {
			in.log = append(in.log, fmt.Sprintf("%s: %s", f, what))
		}
		in.mu.Unlock()
		in.doing("waiting for the next fault")
	}
}

// account is the global account of a server without auth.
const account = "$G"

func (in *injector) leader() *testnats.Server {
	for _, n := range in.cluster.Nodes {
		if s := n.Server(); s != nil && s.JetStreamIsStreamLeader(account, in.stream) {
			return n
		}
	}
	return nil
}

func (in *injector) killLeader(downtime time.Duration, started chan struct{}) (string, error) {
	var node *testnats.Server
	deadline := time.Now().Add(20 * time.Second)
	for node = in.leader(); node == nil; node = in.leader() {
		if time.Now().After(deadline) {
			close(started)
			return "", fmt.Errorf("stream %s has no leader to kill", in.stream)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range in.cluster.Nodes {
		if n.Server() == nil {
			// An earlier restart failed for good: stopping a second node
			// would take the stream's quorum for the downtime.
			close(started)
			return "", fmt.Errorf("skipped: node %s is still down", n.URL())
		}
	}
	name := node.Server().Name()
	in.doing(fmt.Sprintf("stopping %s", name))
	node.Stop()
	close(started)
	var thief net.Listener
	if in.stealPort {
		thief, _ = net.Listen("tcp", strings.TrimPrefix(node.URL(), "nats://"))
	}
	in.doing(fmt.Sprintf("%s down for %s", name, downtime))
	time.Sleep(downtime)
	if err := in.restart(node, name, deadline.Add(time.Minute), thief); err != nil {
		return "", err
	}
	// Let the stream settle on a leader before the next fault.
	in.doing(fmt.Sprintf("waiting for a stream leader after restarting %s", name))
	for in.leader() == nil {
		if time.Now().After(deadline.Add(time.Minute)) {
			return "", fmt.Errorf("stream %s elected no leader after %s came back", in.stream, name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Sprintf("stopped %s, restarted it; new leader %s", name, in.leader().Server().Name()), nil
}

// restartTries is how often a stopped node is started again before the
// fault counts as not carried out. A node restarts on its old ports; a
// process running beside the suite (go test ./..., the soak's load) can
// have taken one meanwhile, and that start then fails after waiting 20s.
// Before the retry, a node lost that way stayed down and the run failed
// with "fault not carried out" (two lost nodes would take the stream's
// quorum: the flow then waits for a leader until its budget runs out).
var restartTries = 3

// restart starts node again on its ports and store, trying again while a
// port is taken, until restartTries or until. thief, when set, holds the
// node's client port (HUBFLOW_FAULTS_SABOTAGE=steal-port) and lets go of it
// after the first failed try.
func (in *injector) restart(node *testnats.Server, name string, until time.Time, thief net.Listener) error {
	for try := 1; ; try++ {
		in.doing(fmt.Sprintf("restarting %s (try %d)", name, try))
		err := node.Restart()
		if thief != nil {
			thief.Close()
			thief = nil
		}
		if err == nil {
			return nil
		}
		in.mu.Lock()
		in.log = append(in.log, fmt.Sprintf("restarting %s, try %d: %v", name, try, err))
		in.mu.Unlock()
		if try >= restartTries || time.Now().After(until) {
			return fmt.Errorf("restarting %s (%d tries): %w", name, try, err)
		}
	}
}

// cutProducer makes the nodes drop the producer's connection, waiting for
// it to be connected if it is reconnecting after an earlier fault.
func (in *injector) cutProducer() (string, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		what, err := in.cutProducerOnce()
		if err == nil || time.Now().After(deadline) {
			return what, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (in *injector) cutProducerOnce() (string, error) {
	cut := 0
	for _, n := range in.cluster.Nodes {
		s := n.Server()
		if s == nil {
			continue
		}
		cz, err := s.Connz(&server.ConnzOptions{Limit: 1 << 16})
		if err != nil {
			return "", err
		}
		for _, c := range cz.Conns {
			if c.Name == in.producer && s.DisconnectClientByID(c.Cid) == nil {
				cut++
			}
		}
	}
	if cut == 0 {
		return "", fmt.Errorf("no connection named %q to cut", in.producer)
	}
	return fmt.Sprintf("cut %d connection(s)", cut), nil
}
