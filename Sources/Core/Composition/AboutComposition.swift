// Composition: a stored email (`QueuedEmail`) as an RFC 5322 message with MIME bodies.
//
// - `MessageComposer.swift`: headers (Date, Message-ID, From, To, Cc, Reply-To, priority), the
//   body's structure (text, HTML, multipart/alternative) and `OutgoingMessage`, the envelope.
// - `QuotedPrintable.swift`: RFC 2045 §6.7 bodies, 76 columns, SMTP-safe (dots, `From `).
// - `HTMLText.swift`: HTML to plain text and back, for the parts a client did not give.
//
// Header folding and encoded-words live in MailModel (`HeaderText`), where the queue checks them too.
