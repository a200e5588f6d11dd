package semantic

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Change is one declared setting the server holds differently.
type Change struct {
	Field    string
	Desired  string
	Observed string
	// Immutable: JetStream cannot apply this change in place. hubflow reports
	// it and never "fixes" it by deleting the stream or consumer.
	Immutable bool
}

func (c Change) String() string {
	return fmt.Sprintf("%s: declared %s, server has %s", c.Field, c.Desired, c.Observed)
}

// Changes is the result of comparing a desired config with the server's.
type Changes []Change

// Immutable returns the changes the server cannot apply in place.
func (cs Changes) Immutable() Changes {
	var out Changes
	for _, c := range cs {
		if c.Immutable {
			out = append(out, c)
		}
	}
	return out
}

// differ collects changes field by field.
type differ struct{ changes Changes }

func (d *differ) check(field string, desired, observed any, immutable bool) {
	if fmt.Sprint(desired) != fmt.Sprint(observed) {
		d.changes = append(d.changes, Change{field, fmt.Sprint(desired), fmt.Sprint(observed), immutable})
	}
}

// StreamChanges compares only what Stream declares, so fields the server
// fills in (compression, consumer limits, its own metadata) never look like
// drift.
func StreamChanges(desired, observed jetstream.StreamConfig) Changes {
	d := &differ{}
	d.check("storage", desired.Storage, observed.Storage, true)
	d.check("retention", desired.Retention, observed.Retention, true)
	d.check("subjects", sortedSet(desired.Subjects), sortedSet(observed.Subjects), false)
	d.check("replicas", max(desired.Replicas, 1), max(observed.Replicas, 1), false)
	d.check("maxAge", desired.MaxAge, observed.MaxAge, false)
	d.check("maxBytes", desired.MaxBytes, observed.MaxBytes, false)
	d.check("maxMessages", desired.MaxMsgs, observed.MaxMsgs, false)
	d.check("maxMessageSize", desired.MaxMsgSize, observed.MaxMsgSize, false)
	d.check("discard", desired.Discard, observed.Discard, false)
	if desired.Duplicates != 0 {
		d.check("duplicateWindow", desired.Duplicates, observed.Duplicates, false)
	}
	d.check("description", desired.Description, observed.Description, false)
	d.check("metadata."+OwnerKey, desired.Metadata[OwnerKey], observed.Metadata[OwnerKey], false)
	d.check("metadata."+WindowHeldForKey, desired.Metadata[WindowHeldForKey], observed.Metadata[WindowHeldForKey], false)
	d.check("metadata."+WindowHeldUntilKey, desired.Metadata[WindowHeldUntilKey], observed.Metadata[WindowHeldUntilKey], false)
	checkCluster(d, desired.Metadata, observed.Metadata)
	return d.changes
}

// ConsumerChanges compares only what Consumer declares.
func ConsumerChanges(desired, observed jetstream.ConsumerConfig) Changes {
	d := &differ{}
	d.check("ackPolicy", desired.AckPolicy, observed.AckPolicy, true)
	d.check("deliverPolicy", desired.DeliverPolicy, observed.DeliverPolicy, true)
	d.check("replayPolicy", desired.ReplayPolicy, observed.ReplayPolicy, true)
	d.check("filterSubjects", filters(desired), filters(observed), false)
	d.check("maxDeliver", desired.MaxDeliver, observed.MaxDeliver, false)
	if desired.AckPolicy != jetstream.AckNonePolicy {
		// The server keeps a default ack wait even when nothing is acked.
		d.check("ackWait", desired.AckWait, observed.AckWait, false)
		d.check("backoff", durations(desired.BackOff), durations(observed.BackOff), false)
		d.check("maxAckPending", desired.MaxAckPending, observed.MaxAckPending, false)
	}
	d.check("description", desired.Description, observed.Description, false)
	d.check("metadata."+OwnerKey, desired.Metadata[OwnerKey], observed.Metadata[OwnerKey], false)
	checkCluster(d, desired.Metadata, observed.Metadata)
	return d.changes
}

// filters merges the two ways a consumer's filter can be held: the server
// accepts either FilterSubject or FilterSubjects.
func filters(c jetstream.ConsumerConfig) []string {
	all := slices.Clone(c.FilterSubjects)
	if c.FilterSubject != "" {
		all = append(all, c.FilterSubject)
	}
	return sortedSet(all)
}

func sortedSet(s []string) []string {
	set := map[string]struct{}{}
	for _, v := range s {
		set[v] = struct{}{}
	}
	return slices.Sorted(maps.Keys(set))
}

func durations(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// checkCluster compares the cluster only when the caller declares one (the
// reconcilers do): an object made by an older release is stamped with it.
func checkCluster(d *differ, desired, observed map[string]string) {
	if desired[ClusterKey] != "" {
		d.check("metadata."+ClusterKey, desired[ClusterKey], observed[ClusterKey], false)
	}
}
