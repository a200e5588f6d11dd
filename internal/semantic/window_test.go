package semantic

import (
	"testing"
	"time"
)

func TestHeldDuplicateWindow(t *testing.T) {
	tests := []struct {
		name                       string
		declared, current, horizon time.Duration
		want                       time.Duration
	}{
		{"new stream", 2 * time.Minute, 0, 30 * time.Second, 2 * time.Minute},
		{"growth is applied", 5 * time.Minute, 2 * time.Minute, 30 * time.Second, 5 * time.Minute},
		{"shrink above the horizon is applied", time.Minute, 2 * time.Minute, 30 * time.Second, time.Minute},
		{"shrink below the horizon stops at it", 10 * time.Second, 2 * time.Minute, 30 * time.Second, 30 * time.Second},
		{"no producer: shrink applied", 10 * time.Second, 2 * time.Minute, 0, 10 * time.Second},
		{"a producer never grows the window", 10 * time.Second, 20 * time.Second, 30 * time.Second, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HeldDuplicateWindow(tt.declared, tt.current, tt.horizon); got != tt.want {
				t.Errorf("HeldDuplicateWindow(%s, %s, %s) = %s, want %s", tt.declared, tt.current, tt.horizon, got, tt.want)
			}
		})
	}
}

func TestHoldWindow(t *testing.T) {
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	held := map[string]string{WindowHeldForKey: "checkout"}
	heldUntil := map[string]string{WindowHeldForKey: "checkout", WindowHeldUntilKey: later.Format(time.RFC3339)}
	for _, tc := range []struct {
		name                      string
		declared, current, horizn time.Duration
		holder                    string
		observed                  map[string]string
		at                        time.Time
		want                      WindowHold
	}{
		{"declared covers the horizon", 2 * time.Minute, 2 * time.Minute, 30 * time.Second, "checkout", nil, now,
			WindowHold{Window: 2 * time.Minute}},
		{"a shrink below a live horizon is held for it", 10 * time.Second, 2 * time.Minute, 30 * time.Second, "checkout", nil, now,
			WindowHold{Window: 30 * time.Second, Holder: "checkout"}},
		{"a shrink no producer ever needed goes through", 10 * time.Second, 2 * time.Minute, 0, "", nil, now,
			WindowHold{Window: 10 * time.Second}},
		{"the holder is gone: held for the grace", 10 * time.Second, 30 * time.Second, 0, "", held, now,
			WindowHold{Window: 30 * time.Second, Holder: "checkout", Until: later}},
		{"still within the grace", 10 * time.Second, 30 * time.Second, 0, "", heldUntil, now.Add(59 * time.Minute),
			WindowHold{Window: 30 * time.Second, Holder: "checkout", Until: later}},
		{"the grace is over", 10 * time.Second, 30 * time.Second, 0, "", heldUntil, later,
			WindowHold{Window: 10 * time.Second}},
		{"a gone holder's grace outlasts a smaller live hold", 10 * time.Second, 30 * time.Second, 20 * time.Second, "refunds", heldUntil, now,
			WindowHold{Window: 30 * time.Second, Holder: "checkout", Until: later}},
		{"after the grace the live hold stays", 10 * time.Second, 30 * time.Second, 20 * time.Second, "refunds", heldUntil, later,
			WindowHold{Window: 20 * time.Second, Holder: "refunds"}},
		{"the holder is back", 10 * time.Second, 30 * time.Second, 30 * time.Second, "checkout", heldUntil, now,
			WindowHold{Window: 30 * time.Second, Holder: "checkout"}},
		{"the declared window grew past the hold", time.Minute, 30 * time.Second, 0, "", heldUntil, now,
			WindowHold{Window: time.Minute}},
	} {
		if got := HoldWindow(tc.declared, tc.current, tc.horizn, tc.holder, tc.observed, tc.at, time.Hour); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
