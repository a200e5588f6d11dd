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
