package semantic

import "testing"

func TestOwnershipOf(t *testing.T) {
	tests := []struct {
		name     string
		metadata map[string]string
		want     Ownership
	}{
		{"no metadata", nil, Unowned},
		{"other keys only", map[string]string{"_nats.ver": "2.15.2"}, Unowned},
		{"this object, this cluster", map[string]string{OwnerKey: "shop/orders", ClusterKey: "eu"}, Owned},
		{"previous release: owner without cluster", map[string]string{OwnerKey: "shop/orders"}, Owned},
		{"another object", map[string]string{OwnerKey: "shop/billing", ClusterKey: "eu"}, OwnedElsewhere},
		{"same object, another cluster", map[string]string{OwnerKey: "shop/orders", ClusterKey: "us"}, OwnedElsewhere},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OwnershipOf(tt.metadata, "eu", "shop", "orders"); got != tt.want {
				t.Errorf("OwnershipOf(%v) = %d, want %d", tt.metadata, got, tt.want)
			}
		})
	}
}

func TestKeepAdoption(t *testing.T) {
	desired := map[string]string{OwnerKey: "shop/orders"}
	KeepAdoption(desired, map[string]string{AdoptedKey: "2026-12-07T00:00:00Z"})
	if desired[AdoptedKey] != "2026-12-07T00:00:00Z" {
		t.Errorf("adoption record dropped: %v", desired)
	}
}
