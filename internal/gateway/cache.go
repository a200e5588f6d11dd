package gateway

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

// StartCache starts the informer cache a gateway replica reads Topics,
// Producers and Consumers from, and returns once it has synced: a publish
// then costs no API request beyond the (cached) TokenReview. It runs until
// ctx ends.
func StartCache(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (cache.Cache, error) {
	kinds := []client.Object{&hubflowv1.Topic{}, &hubflowv1.Producer{}, &hubflowv1.Consumer{}}
	byObject := map[client.Object]cache.ByObject{}
	for _, k := range kinds {
		byObject[k] = cache.ByObject{}
	}
	objects, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: byObject})
	if err != nil {
		return nil, err
	}
	go func() { _ = objects.Start(ctx) }()
	for _, k := range kinds {
		if _, err := objects.GetInformer(ctx, k); err != nil {
			return nil, err
		}
	}
	if !objects.WaitForCacheSync(ctx) {
		return nil, errors.New("the Topic, Producer and Consumer caches did not sync")
	}
	return objects, nil
}
