package binding

// IdempotencyKeyHeader, when a message carries it, is the message's
// idempotency key for consumers, in place of its Nats-Msg-Id. hubflow sets
// it when it replays a dead letter into its source Topic: the replay is a
// new message to the stream (a Nats-Msg-Id of its own, so the stream's
// duplicate window does not swallow it) yet the same message to every
// consumer, so one that processed the original skips the replay.
const IdempotencyKeyHeader = "Hubflow-Idempotency-Key"
