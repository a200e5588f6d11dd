package controllers_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/hubflow/hubflow/controllers"
)

// The manager's cache holds binding Secrets only, and with namespaces
// given, nothing outside them.
func TestCacheOptions(t *testing.T) {
	opts := controllers.CacheOptions()
	if len(opts.DefaultNamespaces) != 0 {
		t.Errorf("no namespaces given, yet the cache is limited to %v", opts.DefaultNamespaces)
	}
	var secrets labels.Selector
	for obj, by := range opts.ByObject {
		if _, ok := obj.(*corev1.Secret); ok {
			secrets = by.Label
		}
	}
	if secrets == nil {
		t.Fatal("Secrets are cached without a label selector")
	}
	for set, want := range map[string]bool{
		controllers.BindingLabel + "=true":  true,
		controllers.BindingLabel + "=false": false,
		"app=web":                           false,
		"":                                  false,
	} {
		l, err := labels.ConvertSelectorToLabelsMap(set)
		if err != nil {
			t.Fatal(err)
		}
		if got := secrets.Matches(l); got != want {
			t.Errorf("a Secret labelled %q cached: %v, want %v", set, got, want)
		}
	}

	opts = controllers.CacheOptions("shop", "billing")
	if _, ok := opts.DefaultNamespaces["shop"]; !ok || len(opts.DefaultNamespaces) != 2 {
		t.Errorf("namespaces %v", opts.DefaultNamespaces)
	}
}
