// Package semantic is hubflow's semantic compiler: pure functions that turn
// Topic, Producer and Consumer specs into JetStream stream and consumer
// configurations and into the client policy each workload must follow, and
// that tell whether what the server holds is still what was declared.
//
// Nothing here talks to a server or an API server, so every rule of the
// delivery contract (see docs/semantics.md) is table-tested in isolation.
package semantic
