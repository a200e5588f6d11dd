// Package hubflow is the client side of a hubflow binding: a Producer and a
// Consumer that read the binding the operator wrote for a Producer or
// Consumer object ($SERVICE_BINDING_ROOT/<name>, or the Secret's data) and
// keep the promise of its delivery semantic, so an application cannot get
// its own semantic wrong.
//
//   - AtMostOnce: fire-and-forget publishes; consumption without
//     acknowledgements and without duplicates.
//   - AtLeastOnce: publishes acknowledged by the stream and retried within
//     the binding's retry horizon; acknowledgement after the handler,
//     redelivery with a delay on error, termination of poison messages.
//   - ExactlyOnce: as AtLeastOnce, with a stable Nats-Msg-Id per logical
//     message so the stream stores it once, a double (server-confirmed)
//     acknowledgement, a stable idempotency key for the handler, and an
//     optional record of processed keys (Dedup) that skips redeliveries.
//
// Both sides connect with the binding's credentials and inbox prefix and
// need only the permissions the operator grants: a producer no $JS.API
// subject at all, a consumer INFO and MSG.NEXT on its own durable and ACK on
// it. Both reconnect forever and resume: a producer resends what was in
// flight when the connection dropped, a consumer pulls again and its
// buffered acknowledgements go out on reconnect. docs/client.md has the
// per-semantic table, the honest limits, and the fault suite's counts.
package hubflow
