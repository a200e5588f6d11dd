// Package controllers holds the reconcilers that compile Topic, Producer and Consumer
// objects into JetStream streams, durable consumers and bindings.
//
// This file carries the RBAC markers of every reconciler, so `make manifests` generates the
// manager's ClusterRole (config/rbac/role.yaml) from the code and the permissions are reviewed
// in one place.
package controllers

// The three kinds: read and watch them, write their finalizers and status. Update on the
// finalizers subresource also lets the binding Secrets' owner references block their owner's
// deletion until the garbage collector removed them (OwnerReferencesPermissionEnforcement).
// +kubebuilder:rbac:groups=hubflow.io,resources=topics;producers;consumers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=hubflow.io,resources=topics/status;producers/status;consumers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=hubflow.io,resources=topics/finalizers;producers/finalizers;consumers/finalizers,verbs=update

// Events for actions and failures; the events.k8s.io API is what current recorders write,
// the core group is kept for older recorders.
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Bindings: each Producer and Consumer gets a Secret (servicebinding.io/nats) in its own
// namespace holding its connection URL and least-privilege NATS credentials. The manager
// creates the Secret and updates it when the spec changes or the credentials are renewed;
// it deletes one only when an object's bindingSecretName changed (a Secret owned by a deleted
// object is garbage-collected through its owner reference). It lists and watches only Secrets
// labelled hubflow.io/binding=true (a label-selected cache), and reads a Secret by name only for
// its metadata, when a create finds the name taken. RBAC cannot limit access to a label or to
// "the namespaces where Producers live", so the verbs are granted cluster-wide by the
// ClusterRole; docs/credentials.md shows how to bind it per namespace instead.
// No patch: the manager never patches a Secret.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
