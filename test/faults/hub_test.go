package faults

import (
	"testing"

	"github.com/hubflow/hubflow/internal/testnats"
)

// hubStarts is how many times a hub is started before the test gives up.
// testnats picks free ports, releases them and binds them again; a test
// process running beside this one (go test ./..., the soak's load) can
// take a port in between, and that node then never becomes ready. Each
// try uses new ports; it is the test bed failing, not the flow under test.
const hubStarts = 3

// startCluster runs a three-node JetStream cluster until the test ends.
func startCluster(t *testing.T) *testnats.Cluster {
	t.Helper()
	var err error
	for try := 1; try <= hubStarts; try++ {
		var c *testnats.Cluster
		if c, err = testnats.StartCluster(t.TempDir()); err == nil {
			t.Cleanup(c.Stop)
			return c
		}
		t.Logf("starting the hub (try %d of %d): %v", try, hubStarts, err)
	}
	t.Fatal(err)
	return nil
}

// singleNode runs a one-node JetStream hub, as a Cluster of one so the
// watch and the flow's helpers take it.
func singleNode(t *testing.T) *testnats.Cluster {
	t.Helper()
	return oneNode(t, func(dir string) (*testnats.Server, error) { return testnats.Start(dir, 0) })
}

// oneNode starts a one-node hub with start, trying again when a port it
// picked was taken meanwhile by a process beside the suite.
func oneNode(t *testing.T, start func(dir string) (*testnats.Server, error)) *testnats.Cluster {
	t.Helper()
	var err error
	for try := 1; try <= hubStarts; try++ {
		var srv *testnats.Server
		if srv, err = start(t.TempDir()); err == nil {
			hub := &testnats.Cluster{Nodes: []*testnats.Server{srv}}
			t.Cleanup(hub.Stop)
			return hub
		}
		t.Logf("starting the hub (try %d of %d): %v", try, hubStarts, err)
	}
	t.Fatal(err)
	return nil
}
