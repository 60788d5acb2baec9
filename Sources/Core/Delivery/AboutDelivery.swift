// Delivery: what happens to an email after each attempt, and who attempts it. No libcurl here
// (that is the SMTP library), so mailfcgi may link the policy's settings.
//
// - `Transport.swift`: the protocol a transport implements (a new transport goes beside
//   `FileTransport.swift`, or in a library of its own as SMTP is).
// - `DeliveryPolicy.swift`: retries (`MAX_RETRIES`, `RETRY_BASE_DELAY`), `MAX_QUEUE_LIFETIME`,
//   recipients one by one; hands the store a `FailureDecision`.
// - `DeliveryPause.swift`: the pool-wide pause after sender-side failures, and the sender's health.
// - `DeliveryAgent.swift`: claim, compose, send, decide, record; expiry while paused.
// - `SMTPSettings.swift`: how to reach the relay (read by Settings, used by SMTP).
// - `QueueStore+Policy.swift`, `ProcessBatchAnswer+Attempt.swift`: glue to Queue and Status.
