// Composition: a stored email (`QueuedEmail`) as an RFC 5322 message with MIME bodies.
//
// - `MessageComposer.swift`: the message's headers (Date, Message-ID, From, To, Cc, Reply-To,
//   Subject, priority, the client's custom headers), `OutgoingMessage` (the envelope), and the
//   composed size measured without composing (`MAX_MESSAGE_BYTES`).
// - `MIMEPart.swift`: the body as a tree of parts (text, HTML, multipart/alternative, /related
//   for inline parts, /mixed for attachments), `MIMEWriter` that writes it (base64 at 76
//   columns, boundaries), and `ParameterText` for RFC 2231 and RFC 2047 file names.
// - `QuotedPrintable.swift`: RFC 2045 §6.7 bodies, 76 columns, SMTP-safe (dots, `From `).
// - `HTMLText.swift`: HTML to plain text and back, for the parts a client did not give.
//
// Header folding and encoded-words live in MailModel (`HeaderText`), where the queue checks them too.
