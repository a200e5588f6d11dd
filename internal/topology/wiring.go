package topology

// Fanout is one Topic's producers and consumers, counted.
type Fanout struct {
	Producers int
	Consumers int
}

// Wiring is the n+1 arithmetic of a set of flows: what the services need
// through the hub against what they would need wired to each other.
type Wiring struct {
	// Services is every producer and consumer; a service that does both
	// counts twice, as cmd/demo counts it.
	Services int
	// HubConnections is one connection per service, to the hub: it grows
	// by one with each new service, whatever exists.
	HubConnections int
	// PointToPoint is the integrations these flows need without a hub:
	// each producer wired to each consumer of its Topic.
	PointToPoint int
	// Mesh is what a full mesh of Services grows to: n(n-1)/2.
	Mesh int
}

// Count is the Wiring of the given Topics.
func Count(flows []Fanout) Wiring {
	var w Wiring
	for _, f := range flows {
		w.Services += f.Producers + f.Consumers
		w.PointToPoint += f.Producers * f.Consumers
	}
	w.HubConnections = w.Services
	w.Mesh = w.Services * (w.Services - 1) / 2
	if w.Mesh < 0 {
		w.Mesh = 0
	}
	return w
}
