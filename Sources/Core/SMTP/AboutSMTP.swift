// SMTP: delivery over SMTP with libcurl (`SMTPTransport`: TLS required, AUTH checked, each
// recipient's reply, no reuse of a failed connection), and `SimpleSend`, the seed's one-call
// helper. Only mailworkerd links this library (and so libcurl).
