/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* HTTP/2 server on sd-event (nghttp2), over TLS with ALPN h2 or cleartext
 * with prior knowledge (h2c). Single-threaded and non-blocking.
 *
 * A request is handed to the request handler once headers and body have
 * arrived (body buffered up to max_request_body). A headers handler, if
 * set, sees the request before its body and may take the body chunk by
 * chunk with h2_request_stream_body(), or answer at once.
 *
 * Responses are complete (h2_request_respond) or streaming
 * (h2_request_start_response, then h2_request_write at any later time from
 * any event, then h2_request_end). The server keeps a reference on each
 * request while its stream is open; take one with h2_request_ref() to keep
 * it beyond the handler, and set a close handler to learn when the stream
 * is gone (finished, reset by the client, connection lost) so you can drop
 * it. Writes to a closed request fail with -ENOTCONN and never crash.
 *
 * Limits (H2ServerConfig) and the error each one produces are in
 * docs/http2.md. Error responses carry {"code": N, "description": "..."}
 * with content-type application/json. */

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "h2-common.h"
#include "macro.h"

typedef struct H2Server H2Server;
typedef struct H2Request H2Request;

typedef struct H2ServerConfig {
        uint32_t max_concurrent_streams; /* per connection; excess: RST_STREAM REFUSED_STREAM */
        uint32_t max_header_list_size;   /* bytes as RFC 9113 counts them; excess: 431 */
        size_t max_request_body;         /* bytes; excess: 413 */
        uint64_t request_timeout_usec;   /* headers+body; 0 disables; excess: 408 */
        uint64_t idle_timeout_usec;      /* no open stream; 0 disables; GOAWAY "idle timeout" */
        unsigned max_connections;        /* excess: GOAWAY "too many connections" */
        size_t max_queued_bytes;         /* per streaming response; excess: -ENOBUFS to the writer */
} H2ServerConfig;

#define H2_SERVER_DEFAULT_MAX_CONCURRENT_STREAMS 100U
#define H2_SERVER_DEFAULT_MAX_HEADER_LIST_SIZE (16U * 1024U)
#define H2_SERVER_DEFAULT_MAX_REQUEST_BODY (1024U * 1024U)
#define H2_SERVER_DEFAULT_REQUEST_TIMEOUT_USEC (30ULL * 1000000ULL)
#define H2_SERVER_DEFAULT_IDLE_TIMEOUT_USEC (120ULL * 1000000ULL)
#define H2_SERVER_DEFAULT_MAX_CONNECTIONS 256U
#define H2_SERVER_DEFAULT_MAX_QUEUED_BYTES (1024U * 1024U)

void h2_server_config_init(H2ServerConfig *c);

/* Return 0 or negative errno; a negative return before any response makes
 * the server answer 500. */
typedef int (*h2_request_handler_t)(H2Request *req, void *userdata);
/* Streaming request bodies; chunks as they arrive, then end once. */
typedef int (*h2_body_chunk_handler_t)(H2Request *req, const uint8_t *data, size_t size, void *userdata);
typedef int (*h2_body_end_handler_t)(H2Request *req, void *userdata);
/* The stream is gone: error 0 when the response was sent completely,
 * -ECONNRESET/-ECANCELED when the client reset it, -ECONNABORTED when the
 * connection was lost or the server shut down. Called at most once. */
typedef void (*h2_request_close_handler_t)(H2Request *req, int error, void *userdata);
typedef void (*h2_server_shutdown_handler_t)(H2Server *s, void *userdata);
/* The streaming response's queue went down to low_water or below. */
typedef void (*h2_request_drain_handler_t)(H2Request *req, void *userdata);

/* tls NULL: h2c with prior knowledge. The server takes its own reference
 * on tls. config NULL: defaults. */
int h2_server_new(sd_event *e, const H2ServerConfig *config, SSL_CTX *tls, H2Server **ret);
/* Closes the listener and every connection at once (close handlers run
 * with -ECONNABORTED) and drops the caller's reference. */
H2Server *h2_server_free(H2Server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(H2Server *, h2_server_free);
#define _cleanup_h2_server_ _cleanup_(h2_server_freep)

/* address: numeric IPv4 or IPv6 (no DNS), NULL or "" for "::" (dual
 * stack). port 0 picks a free one: read it with h2_server_get_port(). */
int h2_server_listen(H2Server *s, const char *address, uint16_t port);
/* Takes an already listening socket (socket activation); the server owns
 * it from then on, also on failure. */
int h2_server_adopt_fd(H2Server *s, int fd);
/* Serves one already connected socket (e.g. socket activation with
 * Accept=yes, or a socketpair in tests); takes ownership, also on failure. */
int h2_server_adopt_connection(H2Server *s, int fd);
int h2_server_get_port(H2Server *s);

void h2_server_set_request_handler(H2Server *s, h2_request_handler_t handler, void *userdata);
void h2_server_set_headers_handler(H2Server *s, h2_request_handler_t handler, void *userdata);

/* Stops accepting, sends GOAWAY (NO_ERROR, "shutdown") on every
 * connection, closes each one when its streams are done, and after
 * grace_usec closes whatever is left (long-lived streams). done, if given,
 * runs once no connection is left (from within this call if there is
 * none). */
int h2_server_shutdown(H2Server *s, uint64_t grace_usec, h2_server_shutdown_handler_t done, void *userdata);

unsigned h2_server_get_n_connections(H2Server *s);

/* --- requests ------------------------------------------------------------- */

H2Request *h2_request_ref(H2Request *req);
H2Request *h2_request_unref(H2Request *req);
DEFINE_TRIVIAL_CLEANUP_FUNC(H2Request *, h2_request_unref);
#define _cleanup_h2_request_ _cleanup_(h2_request_unrefp)

const char *h2_request_get_method(H2Request *req);
/* The path without the query; the query without '?', or NULL. */
const char *h2_request_get_path(H2Request *req);
const char *h2_request_get_query(H2Request *req);
const char *h2_request_get_authority(H2Request *req);
const char *h2_request_get_scheme(H2Request *req);
/* The client's IP address (numeric, IPv4-mapped IPv6 as IPv4) into buf of
 * size bytes (INET6_ADDRSTRLEN is enough). -ENOTCONN when the stream is
 * gone, -EAFNOSUPPORT for a socket without one (AF_UNIX). */
int h2_request_get_peer_address(H2Request *req, char *buf, size_t size);
/* First header with that name (case-insensitive), or NULL. */
const char *h2_request_get_header(H2Request *req, const char *name);
size_t h2_request_get_n_headers(H2Request *req);
/* Regular headers only, in arrival order; -ERANGE past the end. */
int h2_request_get_header_at(H2Request *req, size_t i, const char **ret_name, const char **ret_value);
/* The buffered body (empty with a streaming body handler). */
const uint8_t *h2_request_get_body(H2Request *req, size_t *ret_size);
int32_t h2_request_get_stream_id(H2Request *req);
void *h2_request_get_userdata(H2Request *req);
void h2_request_set_userdata(H2Request *req, void *userdata);
/* True once the stream is gone. */
bool h2_request_is_closed(H2Request *req);

/* Only from the headers handler. */
int h2_request_stream_body(H2Request *req, h2_body_chunk_handler_t chunk, h2_body_end_handler_t end,
                           void *userdata);
/* Flow control for a streaming body: while paused no window is given
 * back, so the client stops once the stream window (64 KiB) is used up;
 * chunks already in flight are still delivered. -EBADFD without a
 * streaming body handler. */
int h2_request_pause_body(H2Request *req, bool pause);
/* -ENOTCONN if the stream is already gone. */
int h2_request_set_close_handler(H2Request *req, h2_request_close_handler_t handler, void *userdata);

/* Complete response; body is copied. -EALREADY if a response was started,
 * -ENOTCONN if the stream is gone. */
int h2_request_respond(H2Request *req, int status, const H2Header *headers, size_t n_headers,
                       const void *body, size_t size);
/* Complete JSON error response {"code":status,"description":...}. */
int h2_request_respond_error(H2Request *req, int status, const char *description);

/* Streaming response: headers now, data with h2_request_write() later. */
int h2_request_start_response(H2Request *req, int status, const H2Header *headers, size_t n_headers);
/* Queues data (copied); -ENOBUFS when more than max_queued_bytes would be
 * waiting for the peer, -ENOTCONN when the stream is gone, -EPIPE after
 * h2_request_end(). */
int h2_request_write(H2Request *req, const void *data, size_t size);
int h2_request_end(H2Request *req);
/* Bytes queued and not yet handed to nghttp2. */
size_t h2_request_get_queued(H2Request *req);
/* For writers that produce as fast as the peer takes (file downloads):
 * after nghttp2 took data from the queue and at most low_water bytes are
 * left, the handler runs from the event loop, outside of any nghttp2
 * callback, and may write. It never runs while nothing is taken, so there
 * is no busy loop: write something first. NULL handler: off. */
int h2_request_set_drain_handler(H2Request *req, size_t low_water, h2_request_drain_handler_t handler,
                                 void *userdata);
/* Resets the stream (RST_STREAM with that HTTP/2 error code). */
int h2_request_reset(H2Request *req, uint32_t error_code);
