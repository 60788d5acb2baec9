#!/usr/bin/env python3
"""Writes Sources/MailFCGI/OpenAPI/openapi.json: the OpenAPI 3.1 description of the API, which
mailfcgi embeds (SwiftPM's embedInCode) and serves at GET /openapi.json. Edit here, run,
commit both; MailFCGITests checks that the document lists exactly the routes the router has."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "401": json_body(ref("Error"), "Not authenticated (answered by nginx)"),
    "429": {**json_body(ref("Error"), "Too many requests for this user (nginx's rate limit)"),
            "headers": {"Retry-After": {"description": "Seconds to wait before retrying",
                                        "schema": {"type": "integer"}}}},
    "500": json_body(ref("InternalError"), "Internal error, with an id to find it in the logs"),
}
VALIDATION = json_body(ref("HTTPValidationError"), "Validation error: every invalid field, FastAPI style")
email_address = {"type": "string", "format": "email", "minLength": 3, "maxLength": 254,
                 "description": "A mailbox, local@domain (RFC 5321); quoted local parts and address literals are refused"}
address_list = {"oneOf": [{"type": "array", "items": email_address, "maxItems": 100}, email_address]}

REQUEST_ID = {"name": "request_id", "in": "path", "required": True,
              "description": "The request_id POST /email answered",
              "schema": {"type": "string", "format": "uuid"}}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Makes a retry safe: a repeat with the same key and the same JSON answers the first "
                   "answer again (Idempotent-Replayed: true) and stores nothing; the same key with another "
                   "body is 422 idempotency_key_reused. Scoped to the user, kept IDEMPOTENCY_TTL_HOURS (24)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[\\x20-\\x7E]+$"},
}
REPLAYED = {"description": "true when this is the first answer again", "schema": {"type": "string", "enum": ["true"]}}
EVENT_TYPES = ["email.sent", "email.partially_sent", "email.deferred", "email.dead_lettered", "email.canceled",
               "email.suppressed"]
STATES = ["scheduled", "queued", "deferred", "sending", "sent", "partially_sent", "dead_letter", "canceled", "held"]

# Operation ids and schema names are those FastAPI generated for the Python service this one
# replaces ({function}{path}_{method}), so client code generated from its spec keeps compiling.
doc = {
    "openapi": "3.1.0",
    "info": {
        "title": "Mail dispatch API",
        "version": "1.0.0",
        "description": "Queue transactional email (raw or from a template) for delivery over SMTP. "
                       "Errors are JSON objects with a `detail` member. This document (`/openapi.json`) "
                       "and its Swagger UI (`/docs/`) are open without credentials; `/health` is open "
                       "to local probes.",
    },
    "servers": [{"url": "/"}],
    "security": [{"basicAuth": []}],
    "paths": {
        "/email": {"post": {
            "summary": "Queue an email",
            "operationId": "send_email_email_post",
            "parameters": [IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref("EmailRequestModel")}}},
            "responses": {
                "200": {**json_body(ref("EmailResponse"), "Stored durably; delivery follows"),
                        "headers": {"Idempotent-Replayed": REPLAYED}},
                "409": json_body(ref("Error"), "A request with this Idempotency-Key is being handled (Retry-After: 1)"),
                "400": json_body(ref("Error"), "Template error: unknown template, missing variables"),
                "413": json_body(ref("Error"), "Body larger than MAX_BODY_BYTES, or a composed message larger than MAX_MESSAGE_BYTES (the detail names the limit)"),
                "415": json_body(ref("Error"), "Not UTF-8 JSON"),
                "422": VALIDATION,
                "503": json_body(ref("Error"), "The queue cannot store emails right now (not accepted; "
                                 "Retry-After says when to retry)"),
                "507": json_body(ref("Error"), "Insufficient storage: the queue's disk is full or below "
                                 "MIN_FREE_BYTES / MIN_FREE_INODES (not accepted; Retry-After says when to retry)"),
                **ERRORS,
            },
        }},
        "/emails/batch": {"post": {
            "summary": "Queue up to MAX_BATCH emails at once",
            "description": "Strict by default: if any item is invalid, 422 lists every error by index "
                           "(loc [\"body\", INDEX, FIELD]) and nothing is queued. With validation=permissive "
                           "the valid items are queued and the answer gives each index its request_id or "
                           "its errors. Every queued item is durable before the answer. Idempotency-Key "
                           "works as on POST /email, for the batch as a whole.",
            "operationId": "send_batch_emails_batch_post",
            "parameters": [
                {"name": "validation", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["strict", "permissive"], "default": "strict"}},
                IDEMPOTENCY_KEY,
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "array", "minItems": 1, "maxItems": 100, "items": ref("EmailRequestModel")}}}},
            "responses": {
                "200": {**json_body(ref("BatchResponse"), "Stored durably (the valid items, when permissive)"),
                        "headers": {"Idempotent-Replayed": REPLAYED}},
                "409": json_body(ref("Error"), "A request with this Idempotency-Key is being handled (Retry-After: 1)"),
                "413": json_body(ref("Error"), "Body larger than MAX_BODY_BYTES, or a composed message larger than MAX_MESSAGE_BYTES (the detail names the limit)"),
                "415": json_body(ref("Error"), "Not UTF-8 JSON"),
                "422": VALIDATION,
                "503": json_body(ref("Error"), "The queue cannot store emails right now (nothing accepted)"),
                "507": json_body(ref("Error"), "Insufficient storage (nothing accepted)"),
                **ERRORS,
            },
        }},
        "/email/{request_id}": {
            # The parameter is repeated in each operation rather than given once for the path:
            # clients that read every member of a path item as an operation keep working.
            "get": {
                "parameters": [REQUEST_ID],
                "summary": "Where an email is: its state, recipients and every attempt",
                "operationId": "get_email_email__request_id__get",
                "responses": {
                    "200": json_body(ref("EmailRecord"), "The email (only the submitting user's)"),
                    "404": json_body(ref("Error"), "No such email, or another user's"),
                    "422": VALIDATION,
                    "503": json_body(ref("Error"), "The queue cannot be read right now"),
                    **ERRORS,
                },
            },
            "delete": {
                "parameters": [REQUEST_ID],
                "summary": "Cancel an email that is scheduled, queued or deferred",
                "operationId": "cancel_email_email__request_id__delete",
                "responses": {
                    "200": json_body(ref("EmailRecord"), "Canceled: it will not be sent"),
                    "404": json_body(ref("Error"), "No such email, or another user's"),
                    "409": json_body(ref("CancelConflict"), "Being sent or already finished: not canceled"),
                    "422": VALIDATION,
                    "503": json_body(ref("Error"), "The queue cannot be read right now"),
                    **ERRORS,
                },
            },
        },
        "/suppressions": {
            "get": {
                "summary": "The suppression list, paged by address",
                "description": "Addresses not sent to: added when a relay refuses a recipient for good because "
                               "its mailbox does not exist or is disabled (5.1.1, 5.1.10, 5.2.1), or by hand. "
                               "An email whose only recipients are suppressed is a 422 (recipient_suppressed); "
                               "a suppressed recipient among others is left out and recorded as suppressed.",
                "operationId": "list_suppressions_suppressions_get",
                "parameters": [
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                    {"name": "after", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "The next_after of the page before"},
                ],
                "responses": {"200": json_body(ref("SuppressionPage"), "One page"), "422": VALIDATION, **ERRORS},
            },
            "post": {
                "summary": "Add an address to the suppression list",
                "operationId": "add_suppression_suppressions_post",
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("SuppressionRequest")}}},
                "responses": {"201": json_body(ref("Suppression"), "Added"),
                              "200": json_body(ref("Suppression"), "It was there: replaced"),
                              "422": VALIDATION, **ERRORS},
            },
        },
        "/suppressions/{address}": {
            "delete": {
                "parameters": [{"name": "address", "in": "path", "required": True,
                                "schema": {"type": "string", "format": "email"}}],
                "summary": "Remove an address from the suppression list",
                "operationId": "remove_suppression_suppressions__address__delete",
                "responses": {"200": json_body({"type": "object", "required": ["address", "deleted"],
                                                "properties": {"address": {"type": "string"},
                                                               "deleted": {"type": "boolean"}}}, "Removed"),
                              "404": json_body(ref("Error"), "Not on the list"), "422": VALIDATION, **ERRORS},
            },
        },
        "/status": {"get": {
            "summary": "Queue statistics and the first queue files",
            "operationId": "get_status_status_get",
            "parameters": [{"name": "limit", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 100}}],
            "responses": {"200": json_body(ref("QueueStatus"), "Counts and files"), "422": VALIDATION, **ERRORS},
        }},
        "/health": {"get": {
            "summary": "Health of the queue, the templates and delivery",
            "operationId": "health_check_health_get",
            "security": [{}, {"basicAuth": []}],
            "responses": {"200": json_body(ref("Health"), "Healthy"),
                          "503": json_body(ref("Health"), "Degraded: a component is unhealthy"), **ERRORS},
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics",
            "description": "The Prometheus text format 0.0.4: accepted, sent, partially sent, deferred, "
                           "dead-lettered and canceled counters; queue depth by state; the age of the oldest due "
                           "email; enqueue and delivery duration histograms; relay health and pause state; "
                           "mail_worker_up; mail_build_info. Open without a password from this host, as /health.",
            "operationId": "metrics_metrics_get",
            "security": [{}, {"basicAuth": []}],
            "responses": {"200": {"description": "Metrics",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}, **ERRORS},
        }},
        "/templates": {"get": {
            "summary": "List the templates",
            "operationId": "list_templates_templates_get",
            "parameters": [{"name": "detailed", "in": "query", "required": False,
                            "schema": {"type": "boolean", "default": False}}],
            "responses": {"200": json_body({"anyOf": [ref("TemplateNames"), ref("TemplateDetails")]}, "Templates (with manifest when detailed)"),
                          "422": VALIDATION, **ERRORS},
        }},
        "/workers/status": {"get": {
            "summary": "Delivery worker pool and per-worker metrics",
            "operationId": "get_workers_status_workers_status_get",
            "responses": {"200": json_body(ref("WorkersStatus"), "Pool state"), **ERRORS},
        }},
        "/process-batch": {"post": {
            "summary": "Deliver the next due email now (carried out by mailworkerd)",
            "operationId": "process_batch_process_batch_post",
            "responses": {"200": json_body(ref("ProcessBatch"), "Whether one was processed, and how"),
                          "503": json_body(ref("Error"), "mailworkerd is not running, or cannot process the queue"),
                          "504": json_body(ref("Error"), "mailworkerd did not answer within 55 s"),
                          **ERRORS},
        }},
        "/": {"get": {
            "summary": "The service's description and its routes (a readiness probe)",
            "operationId": "root__get",
            "security": [{}, {"basicAuth": []}],
            "responses": {"200": json_body(ref("ServiceInfo"), "Name, version, description, routes"), **ERRORS},
        }},
        "/openapi.json": {"get": {
            "summary": "This document",
            "operationId": "openapi",
            "security": [],  # open, like /docs
            "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.1"),
                          "500": ERRORS["500"]},
        }},
    },
    "webhooks": {
        "emailEvent": {"post": {
            "summary": "A delivery event, POSTed by mailworkerd to WEBHOOK_URL",
            "description": "Signed per Standard Webhooks: webhook-id (the event id, stable: de-duplicate on it), "
                           "webhook-timestamp (Unix seconds), webhook-signature (v1, + base64 HMAC-SHA256 of "
                           "{id}.{timestamp}.{body} with WEBHOOK_SECRET's bytes). Answer 2xx within 10 s; anything "
                           "else is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (WEBHOOK_RETRY_SCHEDULE).",
            "operationId": "email_event_webhook",
            "parameters": [{"name": n, "in": "header", "required": True, "schema": {"type": "string"}}
                           for n in ("webhook-id", "webhook-timestamp", "webhook-signature")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref("WebhookPayload")}}},
            "responses": {"2XX": {"description": "Taken; anything else is retried"}},
        }},
    },
    "components": {
        "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        "schemas": {
            "EmailRequestModel": {
                "type": "object",
                "required": ["to_email"],
                "description": "subject and body are required unless template_name is given.",
                "properties": {
                    "to_email": email_address,
                    "subject": {"type": "string", "maxLength": 16384, "description": "Folded over several header lines when long (RFC 5322 limits a line, not a field); at most 16384 characters, no control characters"},
                    "body": {"type": "string", "description": "The text (with format html: the HTML). With "
                             "format multipart and no html_body, the HTML part is derived from it: escaped, "
                             "blank lines as paragraphs, other line breaks as <br>"},
                    "template_name": {"type": "string", "pattern": "^[A-Za-z0-9-][A-Za-z0-9_-]{0,99}$"},
                    "template_vars": {"type": "object"},
                    "priority": {"type": "integer", "minimum": 1, "maximum": 3, "default": 2},
                    "format": {"type": "string", "enum": ["plain", "html", "multipart"], "default": "plain"},
                    "html_body": {"type": "string", "description": "The HTML part; only with format multipart "
                                  "(body is then the text part)"},
                    "cc": address_list,
                    "bcc": address_list,
                    "reply_to": email_address,
                    "send_at": {"type": "string", "format": "date-time",
                                "description": "When to send it (RFC 3339 with a time zone), at most "
                                "MAX_SCHEDULE_DAYS (default 30) ahead; a time in the past means now. "
                                "Until then the email is scheduled, and can be canceled"},
                    "tags": {"type": "array", "maxItems": 10, "items": ref("Tag"),
                             "description": "Labels kept with the email and answered by GET /email/{request_id}"},
                    "attachments": {"type": "array", "maxItems": 100, "items": ref("Attachment"),
                                    "description": "Files, at most MAX_ATTACHMENTS (default 20; maxItems is its upper bound). Items with a "
                                    "content_id are inline parts the HTML references as cid:ID (multipart/related); "
                                    "the others are attachments (multipart/mixed). The composed message may be at "
                                    "most MAX_MESSAGE_BYTES (default 10 MiB; base64 included): larger is 413"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 50,
                                "description": "Extra headers, name to value: names as RFC 5322 field-names, values "
                                "without control characters (non-ASCII as RFC 2047). Refused: From, Sender, To, Cc, "
                                "Bcc, Reply-To, Subject, Date, Message-ID, MIME-Version, Content-*, Received, "
                                "DKIM-Signature, Return-Path, X-Priority, Importance. List-Unsubscribe takes "
                                "<https:...> or <mailto:...> URIs; List-Unsubscribe-Post must be "
                                "List-Unsubscribe=One-Click (RFC 8058) beside an https List-Unsubscribe"},
                },
            },
            "WebhookPayload": {
                "type": "object", "required": ["type", "timestamp", "data"],
                "properties": {"type": {"type": "string", "enum": EVENT_TYPES},
                               "timestamp": {"type": "string", "format": "date-time"},
                               "data": ref("DeliveryEvent")},
            },
            "DeliveryEvent": {
                "type": "object",
                "required": ["id", "type", "created_at", "request_id", "message_id", "recipients", "tags"],
                "properties": {
                    "id": {"type": "string", "description": "evt_{request id hex}_{n}_{type}: stable, for de-duplication"},
                    "type": {"type": "string", "enum": EVENT_TYPES},
                    "created_at": {"type": "string", "format": "date-time"},
                    "request_id": {"type": "string", "format": "uuid"},
                    "message_id": {"type": "string"},
                    "recipients": {"type": "array", "items": {
                        "type": "object", "required": ["address", "state"],
                        "properties": {"address": {"type": "string"},
                                       "state": {"type": "string", "enum": ["sent", "failed", "deferred", "suppressed", "canceled"]},
                                       "code": {"type": "integer"}, "reply": {"type": "string"}}}},
                    "tags": {"type": "array", "items": ref("Tag")},
                    "submitted_by": {"type": "string"},
                    "code": {"type": "integer", "description": "The SMTP reply code that decided it"},
                    "reply": {"type": "string", "description": "The SMTP reply text"},
                },
            },
            "Suppression": {
                "type": "object", "required": ["address", "origin", "reason", "created_at"],
                "properties": {
                    "address": {"type": "string"},
                    "origin": {"type": "string", "enum": ["bounce", "manual"]},
                    "reason": {"type": "string", "description": "The relay's reply for a bounce, else the reason given"},
                    "code": {"type": "integer", "description": "The bounce's reply code"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "expires_at": {"type": "string", "format": "date-time",
                                   "description": "With SUPPRESSION_TTL_DAYS; absent: never"},
                    "request_id": {"type": "string", "description": "The email whose bounce added it"},
                },
            },
            "SuppressionPage": {
                "type": "object", "required": ["data", "has_more", "next_after"],
                "properties": {"data": {"type": "array", "items": ref("Suppression")},
                               "has_more": {"type": "boolean"},
                               "next_after": {"type": ["string", "null"]}},
            },
            "SuppressionRequest": {
                "type": "object", "required": ["address", "reason"],
                "properties": {"address": {"type": "string", "format": "email"},
                               "reason": {"type": "string", "maxLength": 1000}},
            },
            "Attachment": {
                "type": "object", "required": ["filename", "content"],
                "properties": {
                    "filename": {"type": "string", "minLength": 1, "maxLength": 255,
                                 "description": "Any Unicode, at most 255 bytes of UTF-8 (sent as RFC 2231 filename* and an "
                                 "RFC 2047 name); "
                                 "no / or \\, no control characters"},
                    "content": {"type": "string", "contentEncoding": "base64",
                                "description": "The file's bytes in base64 (RFC 4648; line breaks allowed)"},
                    "content_type": {"type": "string", "description": "A media type (type/subtype, parameters "
                                     "allowed; not multipart/* or message/*); default: from the file name's "
                                     "extension, else application/octet-stream"},
                    "content_id": {"type": "string", "description": "Makes the item an inline part with this "
                                   "Content-ID (angle brackets optional), e.g. logo@example.com; needs an HTML body"},
                },
            },
            "BatchResponse": {
                "type": "object", "required": ["data", "stored", "refused"],
                "properties": {
                    "data": {"type": "array", "items": {
                        "type": "object", "required": ["index"],
                        "properties": {"index": {"type": "integer"},
                                       "request_id": {"type": "string", "format": "uuid"},
                                       "status": {"type": "string", "enum": ["queued", "scheduled"]},
                                       "errors": {"type": "array", "items": ref("ValidationError")}}}},
                    "stored": {"type": "integer"},
                    "refused": {"type": "integer"},
                },
            },
            "Tag": {
                "type": "object", "required": ["name", "value"],
                "properties": {k: {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,256}$"} for k in ["name", "value"]},
            },
            "EmailRecord": {
                "type": "object",
                "required": ["request_id", "message_id", "state", "created_at", "send_at", "next_attempt_at",
                             "retry_count", "finished_at", "to_email", "cc", "bcc", "subject", "template_name",
                             "priority", "recipients", "tags", "submitted_by", "last_error", "attempts",
                             "dead_letter"],
                "properties": {
                    "request_id": {"type": "string", "format": "uuid"},
                    "message_id": {"type": "string"},
                    "state": {"type": "string", "enum": STATES},
                    "created_at": {"type": "string", "format": "date-time"},
                    "send_at": {"type": ["string", "null"], "format": "date-time"},
                    "next_attempt_at": {"type": ["string", "null"], "format": "date-time",
                                        "description": "When the next attempt is due (scheduled, queued, deferred)"},
                    "retry_count": {"type": "integer"},
                    "finished_at": {"type": ["string", "null"], "format": "date-time",
                                    "description": "When it was sent, dead-lettered or canceled"},
                    "to_email": {"type": "string"},
                    "cc": {"type": "array", "items": {"type": "string"}},
                    "bcc": {"type": "array", "items": {"type": "string"}},
                    "subject": {"type": "string"},
                    "template_name": {"type": ["string", "null"]},
                    "priority": {"type": "integer"},
                    "recipients": {"type": "array", "items": {
                        "type": "object", "required": ["address", "state", "code", "reply", "at"],
                        "properties": {
                            "address": {"type": "string"},
                            "state": {"type": "string", "enum": ["pending", "sent", "failed", "deferred", "canceled", "suppressed"]},
                            "code": {"type": ["integer", "null"]},
                            "reply": {"type": ["string", "null"]},
                            "at": {"type": ["string", "null"], "format": "date-time"}}}},
                    "tags": {"type": "array", "items": ref("Tag")},
                    "submitted_by": {"type": ["string", "null"]},
                    "last_error": {"type": ["string", "null"]},
                    "attempts": {"type": "array", "items": ref("Attempt")},
                    "dead_letter": {"oneOf": [{"type": "null"}, {
                        "type": "object", "required": ["reason", "kind"],
                        "properties": {"reason": {"type": "string"},
                                       "kind": {"type": "string", "enum": ["permanent", "retries_exhausted", "expired"]}}}]},
                },
            },
            "Attempt": {
                "type": "object", "required": ["at", "error"],
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "error": {"type": "string"},
                    "code": {"type": "integer", "description": "The SMTP reply code that decided it"},
                    "scope": {"type": "string", "enum": ["sender", "email"]},
                    "relay_saw": {"type": "boolean"},
                    "counted": {"type": "boolean"},
                    "recipients": {"type": "array", "items": {
                        "type": "object", "required": ["address", "status"],
                        "properties": {"address": {"type": "string"},
                                       "status": {"type": "string", "enum": ["accepted", "deferred", "refused"]},
                                       "code": {"type": "integer"}, "reply": {"type": "string"}}}},
                },
            },
            "CancelConflict": {
                "type": "object", "required": ["detail", "state"],
                "properties": {"detail": {"type": "string"}, "state": {"type": "string", "enum": STATES}},
            },
            "EmailResponse": {
                "type": "object",
                "required": ["request_id", "message", "status", "timestamp"],
                "properties": {
                    "request_id": {"type": "string", "format": "uuid"},
                    "message": {"type": "string"},
                    "status": {"type": "string", "enum": ["queued", "scheduled"],
                               "description": "scheduled when send_at is in the future"},
                    "timestamp": {"type": "string", "format": "date-time"},
                },
            },
            "Error": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}},
            "InternalError": {"type": "object", "required": ["detail", "error_id"],
                              "properties": {"detail": {"type": "string"}, "error_id": {"type": "string"}}},
            "ValidationError": {
                "type": "object", "required": ["loc", "msg", "type"],
                "properties": {"loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                               "msg": {"type": "string"}, "type": {"type": "string"},
                               "input": {"description": "The offending value, when known"},
                               "ctx": {"type": "object", "description": "The constraint, e.g. {\"le\": 3}"}},
            },
            "HTTPValidationError": {"type": "object", "required": ["detail"],
                                    "properties": {"detail": {"type": "array", "items": ref("ValidationError")}}},
            "QueueFile": {
                "type": "object", "required": ["file", "state", "size_bytes"],
                "properties": {
                    "file": {"type": "string"},
                    "request_id": {"type": ["string", "null"]},
                    "state": {"type": "string", "enum": ["pending", "scheduled", "deferred", "processing"]},
                    "priority": {"type": ["integer", "null"]},
                    "retry_count": {"type": ["integer", "null"]},
                    "next_attempt_at": {"type": ["string", "null"]},
                    "created_at": {"type": ["string", "null"]},
                    "size_bytes": {"type": "integer"},
                },
            },
            "QueueStatus": {
                "type": "object",
                "required": ["status", "timestamp", "total_files", "pending_emails", "queue", "limit", "files"],
                "properties": {
                    "total_batches": {"type": "integer", "description": "Queue files waiting or being sent"},
                    "total_emails": {"type": "integer", "description": "Emails waiting or being sent (one per file)"},
                    "batch_size": {"type": "integer", "description": "Emails per queue file: always 1"},
                    "batches": {"type": "array", "items": {
                        "type": "object", "required": ["batch_id", "email_count", "status", "created_at"],
                        "properties": {"batch_id": {"type": "string"}, "email_count": {"type": "integer"},
                                       "status": {"type": "string"},
                                       "created_at": {"type": ["string", "null"]}}}},
                    "status": {"type": "string"},
                    "timestamp": {"type": "string"},
                    "total_files": {"type": "integer"},
                    "pending_emails": {"type": "integer"},
                    "queue": {"type": "object", "properties": {k: {"type": "integer"} for k in
                              ["total_files", "pending", "deferred", "processing", "dead_letter", "trash", "corrupt"]}},
                    "limit": {"type": "integer"},
                    "files": {"type": "array", "items": ref("QueueFile")},
                },
            },
            "ServiceInfo": {
                "type": "object", "required": ["name", "version", "description", "endpoints", "documentation"],
                "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                               "description": {"type": "string"},
                               "endpoints": {"type": "object", "additionalProperties": {"type": "string"}},
                               "documentation": {"type": "string"}},
            },
            "Health": {
                "type": "object", "required": ["status", "timestamp", "components"],
                "properties": {"status": {"type": "string", "enum": ["healthy", "degraded"]},
                               "timestamp": {"type": "string"},
                               "components": {
                                   "type": "object",
                                   "required": ["queue_manager", "template_engine", "email_sender", "storage"],
                                   "properties": {k: {"type": "string"} for k in
                                                  ["queue_manager", "template_engine", "email_sender", "storage"]},
                                   "additionalProperties": {"type": "string"}},
                               "webhook_events": {
                                   "type": "object", "description": "Webhook events waiting and given up (not judged)",
                                   "properties": {"pending": {"type": "integer"}, "failed": {"type": "integer"}}},
                               "worker_hosts": {
                                   "type": "object", "additionalProperties": {"type": "string"},
                                   "description": "QUEUE_STORE=postgres: each worker host's mailworkerd (host/pid), "
                                                  "healthy or why not; email_sender is healthy while any one delivers"}},
            },
            "TemplateNames": {"type": "object", "required": ["templates", "count"],
                              "properties": {"templates": {"type": "array", "items": {"type": "string"}},
                                             "count": {"type": "integer"}}},
            "TemplateDetails": {
                "type": "object", "required": ["templates", "count", "manifest"],
                "properties": {
                    "templates": {"type": "array", "items": {"type": "string"}},
                    "count": {"type": "integer"},
                    "manifest": {
                        "type": "object", "required": ["templates", "generated_at", "total_templates"],
                        "properties": {
                            "generated_at": {"type": "string", "format": "date-time"},
                            "total_templates": {"type": "integer"},
                            "templates": {"type": "array", "items": {
                                "type": "object",
                                "required": ["name", "file_path", "html_file_path", "placeholders", "description", "files"],
                                "properties": {
                                    "name": {"type": "string"}, "description": {"type": "string"},
                                    "file_path": {"type": "string"},
                                    "html_file_path": {"type": ["string", "null"]},
                                    "files": {"type": "object", "properties": {"text": {"type": "string"},
                                                                                "html": {"type": "string"}}},
                                    "placeholders": {"type": "array", "items": {"type": "string"}}}}}}}},
            },
            "Worker": {
                "type": "object",
                "required": ["worker_id", "running", "emails_sent", "emails_failed", "avg_latency_ms"],
                "properties": {"worker_id": {"type": "integer"}, "running": {"type": "boolean"},
                               "current_batch": {"type": ["string", "null"]},
                               "emails_sent": {"type": "integer"}, "emails_failed": {"type": "integer"},
                               "avg_latency_ms": {"type": "number"}},
            },
            "WorkersStatus": {
                "type": "object", "required": ["worker_pool_status", "status"],
                "properties": {
                    "auto_processing_enabled": {"type": ["boolean", "null"]},
                    "worker_pool_status": {"type": "string"},
                    "status": {"type": "object", "required": ["total_workers", "active_workers", "workers"],
                               "properties": {"total_workers": {"type": "integer"},
                                              "active_workers": {"type": "integer"},
                                              "workers": {"type": "array", "items": ref("Worker")}}},
                    "hosts": {
                        "type": "array",
                        "description": "QUEUE_STORE=postgres: every worker host's mailworkerd, from its heartbeat in "
                                       "the shared database (absent with the file queue)",
                        "items": {
                            "type": "object",
                            "required": ["host", "id", "heartbeat", "alive", "worker_pool_status", "total_workers",
                                         "active_workers", "emails_sent", "emails_failed"],
                            "properties": {"host": {"type": "string"}, "id": {"type": "string"},
                                           "heartbeat": {"type": "string", "format": "date-time"},
                                           "alive": {"type": "boolean"}, "worker_pool_status": {"type": "string"},
                                           "total_workers": {"type": "integer"},
                                           "active_workers": {"type": "integer"},
                                           "emails_sent": {"type": "integer"},
                                           "emails_failed": {"type": "integer"}}}},
                },
            },
            "ProcessBatch": {
                "type": "object", "required": ["processed", "message", "timestamp"],
                "properties": {"processed": {"type": "boolean"}, "message": {"type": "string"},
                               "request_id": {"type": ["string", "null"]}, "file": {"type": ["string", "null"]},
                               "outcome": {"type": ["string", "null"], "enum": ["sent", "deferred", "dead_letter", None]},
                               "error": {"type": ["string", "null"]},
                               "next_attempt_at": {"type": ["string", "null"]}, "timestamp": {"type": "string"},
                               "recipients": {"type": "array", "items": ref("RecipientOutcome"),
                                              "description": "Each recipient's outcome after the attempt"}},
            },
            "RecipientOutcome": {
                "type": "object", "required": ["address", "state"],
                "properties": {"address": {"type": "string"},
                               "state": {"type": "string", "enum": ["sent", "failed", "deferred"]},
                               "code": {"type": ["integer", "null"], "description": "The relay's SMTP reply code"},
                               "reply": {"type": ["string", "null"], "description": "The relay's reply line"}},
            },
        },
    },
}

text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
(ROOT / "Sources/MailFCGI/OpenAPI/openapi.json").write_text(text)
