package topology

import "testing"

func TestCount(t *testing.T) {
	cases := []struct {
		name  string
		flows []Fanout
		want  Wiring
	}{
		{"nothing", nil, Wiring{}},
		{"one producer, no consumer", []Fanout{{1, 0}}, Wiring{Services: 1, HubConnections: 1}},
		{"one to one", []Fanout{{1, 1}}, Wiring{Services: 2, HubConnections: 2, PointToPoint: 1, Mesh: 1}},
		// The three sample flows in one namespace, as cmd/demo counts them.
		{"samples", []Fanout{{1, 1}, {1, 2}, {1, 2}}, Wiring{Services: 8, HubConnections: 8, PointToPoint: 5, Mesh: 28}},
		{"fan-in and fan-out", []Fanout{{3, 4}}, Wiring{Services: 7, HubConnections: 7, PointToPoint: 12, Mesh: 21}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Count(tc.flows); got != tc.want {
				t.Fatalf("Count(%v) = %+v, want %+v", tc.flows, got, tc.want)
			}
		})
	}
}
