// Typed, non-variadic wrappers over libcurl's variadic calls, so Swift can call them.
// Each wrapper forwards to curl_easy_setopt/curl_easy_getinfo with the argument type the
// option documents (libcurl man pages: curl_easy_setopt(3), curl_easy_getinfo(3)).
#ifndef CCURL_H
#define CCURL_H

#include <curl/curl.h>

// libcurl 7.69 to 8.1 (Debian 12 has 7.88) spell this option with three Ls; 8.2 fixed it.
#ifndef CURLOPT_MAIL_RCPT_ALLOWFAILS
#define CURLOPT_MAIL_RCPT_ALLOWFAILS CURLOPT_MAIL_RCPT_ALLLOWFAILS
#endif
/// CURLOPT_MAIL_RCPT_ALLOWFAILS, as a constant Swift can see (it cannot see the macro).
static const CURLoption ccurl_mail_rcpt_allowfails = CURLOPT_MAIL_RCPT_ALLOWFAILS;

/// Options taking a `long` (CURLOPT_UPLOAD, CURLOPT_PORT, timeouts, CURLOPT_USE_SSL, ...).
CURLcode ccurl_setopt_long(CURL *handle, CURLoption option, long value);
/// Options taking a `char *` (CURLOPT_URL, CURLOPT_MAIL_FROM, credentials, CA file, ...).
CURLcode ccurl_setopt_string(CURL *handle, CURLoption option, const char *value);
/// Options taking a `struct curl_slist *` (CURLOPT_MAIL_RCPT).
CURLcode ccurl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
/// Options taking a `void *` (CURLOPT_READDATA, CURLOPT_DEBUGDATA, ...).
CURLcode ccurl_setopt_pointer(CURL *handle, CURLoption option, void *value);
/// CURLOPT_READFUNCTION.
CURLcode ccurl_setopt_read_function(CURL *handle, curl_read_callback callback);
/// CURLOPT_WRITEFUNCTION (an SMTP command's reply, e.g. NOOP's, is written as body data).
CURLcode ccurl_setopt_write_function(CURL *handle, curl_write_callback callback);
/// CURLOPT_DEBUGFUNCTION (used to read the server's reply lines).
CURLcode ccurl_setopt_debug_function(CURL *handle, curl_debug_callback callback);
/// CURLOPT_PREREQFUNCTION: called once the session is set up (greeting, EHLO, STARTTLS,
/// AUTH done) and before MAIL FROM; returning CURL_PREREQFUNC_ABORT ends the transfer.
CURLcode ccurl_setopt_prereq_function(CURL *handle, curl_prereq_callback callback);
/// CURLINFO_* values that return a `long` (CURLINFO_RESPONSE_CODE, CURLINFO_NUM_CONNECTS).
CURLcode ccurl_getinfo_long(CURL *handle, CURLINFO info, long *value);

#endif
