// Package controllers holds the reconcilers that compile Topic, Producer and Consumer
// objects into JetStream streams, durable consumers and bindings.
//
// The reconcilers come in a following issue. This file already carries the RBAC markers
// they need, so `make manifests` generates the manager's ClusterRole (config/rbac/role.yaml)
// from the code from the start, and the permissions are reviewed in one place.
package controllers

// The three kinds: read and watch them, write their finalizers and status.
// +kubebuilder:rbac:groups=hubflow.io,resources=topics;producers;consumers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=hubflow.io,resources=topics/status;producers/status;consumers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=hubflow.io,resources=topics/finalizers;producers/finalizers;consumers/finalizers,verbs=update

// Events for actions and failures; the events.k8s.io API is what current recorders write,
// the core group is kept for older recorders.
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Bindings: each Producer and Consumer gets a Secret (servicebinding.io/nats) holding its
// connection URL and least-privilege NATS credentials. The operator creates, rotates and
// deletes those Secrets, so it needs full access to Secrets. This is the broadest permission
// the operator holds; the credentials issue may narrow it (for example with a label-selected
// cache) but the verbs stay.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
