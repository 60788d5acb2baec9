// MailModel: the email as the queue stores it and everything that checks or names it; no I/O
// beyond what Platform gives.
//
// - `QueuedEmail.swift`: the stored email, its attempts (`DeliveryAttempt`) and its recipients'
//   outcomes (`RecipientOutcome`); the envelope (`envelopeRecipients`, `pendingRecipients`).
// - `DeliveryError.swift`: why an attempt failed (scope, kind, the relay's reply per recipient).
// - `DeadLetter.swift`: the dead letter record and `DeadLetterKind`.
// - `Mailbox.swift`, `MailboxInput.swift`, `HeaderText.swift`, `Sender.swift`: addresses and
//   headers (RFC 5321, 5322, 2047).
// - `Attachment.swift` (attachments, base64 checked without decoding, media types) and
//   `CustomHeader.swift` (the client's headers, List-Unsubscribe).
// - `RequestID.swift`, `QueueCoding.swift` (JSON coding, `Timestamp`), `JSONValue.swift`.
