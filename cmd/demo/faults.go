package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hubflow/hubflow/internal/testnats"
)

// faults are what hits every flow while it runs, at the same points of its
// traffic: the producers' connections cut a third of the way through, the
// node leading the Topic's stream stopped for a moment at two thirds, and
// each consumer killed once between handling a message and acknowledging
// it, then replaced, as a Deployment replaces a crashed pod.
type faults struct {
	cluster *testnats.Cluster
	mu      sync.Mutex
	log     []string
}

func (fs *faults) note(format string, args ...any) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.log = append(fs.log, fmt.Sprintf(format, args...))
}

// cutConnections makes every node drop the client connections named name
// (hubflow.WithName), as a network cut would; the client reconnects.
func (fs *faults) cutConnections(name string) {
	cut := 0
	for _, n := range fs.cluster.Nodes {
		s := n.Server()
		if s == nil {
			continue
		}
		conns, err := s.Connz(&server.ConnzOptions{Limit: 1 << 16})
		if err != nil {
			continue
		}
		for _, c := range conns.Conns {
			if c.Name == name && s.DisconnectClientByID(c.Cid) == nil {
				cut++
			}
		}
	}
	fs.note("cut %d connection(s) of producer %s", cut, name)
}

// globalAccount is the account of a hub without auth.
const globalAccount = "$G"

// stopLeader stops the node leading stream for downtime, then restarts it.
func (fs *faults) stopLeader(stream string, downtime time.Duration) {
	for _, n := range fs.cluster.Nodes {
		s := n.Server()
		if s == nil || !s.JetStreamIsStreamLeader(globalAccount, stream) {
			continue
		}
		name := s.Name()
		n.Stop()
		time.Sleep(downtime)
		if err := n.Restart(); err != nil {
			fs.note("stopped %s (leader of %s) and could not restart it: %v", name, stream, err)
			return
		}
		fs.note("stopped %s, the leader of stream %s, for %s", name, stream, downtime)
		return
	}
	fs.note("stream %s had no leader to stop", stream)
}
