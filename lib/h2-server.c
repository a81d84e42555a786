/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "h2-server.h"
#include "h2-transport.h"
#include "log.h"

typedef struct H2Connection H2Connection;

/* How long a refused connection may take to hear why, when idle timeouts
 * are off. */
#define REFUSED_TIMEOUT_USEC (10ULL * 1000000ULL)

#define CONNECTION_WINDOW_EXTRA (1024U * 1024U)

#define ACCEPT_BACKOFF_USEC (100ULL * 1000ULL)

enum response_state {
        RESPONSE_NONE,
        RESPONSE_STREAMING, /* headers submitted, end not yet requested */
        RESPONSE_ENDING,    /* all data queued, EOF once drained */
};

typedef struct HeaderRef {
        uint32_t name, value; /* offsets into hbuf */
} HeaderRef;

#define NO_OFFSET UINT32_MAX

struct H2Request {
        unsigned n_ref;
        H2Connection *conn; /* NULL once the stream is gone */
        int32_t stream_id;

        /* All header strings, NUL-terminated, in one buffer. */
        char *hbuf;
        size_t hlen, halloc;
        HeaderRef *headers;
        size_t n_headers, headers_alloc;
        /* Typical requests fit in these: no allocation per header. */
        char hbuf_inline[384];
        HeaderRef headers_inline[8];
        uint32_t method, path, query, authority, scheme;
        size_t header_bytes;

        uint8_t *body;
        size_t body_len, body_alloc;

        h2_body_chunk_handler_t body_chunk;
        h2_body_end_handler_t body_end;
        void *body_userdata;

        h2_request_close_handler_t close_handler;
        void *close_userdata;

        h2_request_drain_handler_t drain_handler;
        void *drain_userdata;
        size_t drain_low_water;
        H2Request *drain_prev, *drain_next;
        bool drain_pending;
        void *userdata;

        /* Receive phase, for the request timeout. */
        H2Request *pending_prev, *pending_next;
        uint64_t deadline;
        bool pending;

        /* All streams of the connection. */
        H2Request *stream_prev, *stream_next;

        size_t unconsumed; /* received while paused, not yet given back */
        bool body_paused;

        bool headers_too_large;
        bool rejected;   /* error response sent before the request was complete */
        bool complete;   /* END_STREAM received */
        bool deferred;   /* data provider returned NGHTTP2_ERR_DEFERRED */
        bool closed;

        enum response_state response;
        uint8_t *out;
        size_t out_start, out_end, out_alloc;
        uint8_t out_inline[256];
};

struct H2Connection {
        unsigned n_ref;
        H2Server *server;
        H2Transport *transport;
        nghttp2_session *session;
        H2Connection *prev, *next;

        H2Request *streams;
        unsigned n_streams;
        H2Request *drain_head, *drain_tail;
        H2Request *pending_head, *pending_tail;

        sd_event_source *request_timer, *idle_timer;

        uint64_t idle_since;
        bool request_timer_armed;

        /* The client's address, from accept time (family AF_UNSPEC if
         * unknown). */
        struct sockaddr_storage peer;

        bool refused;
        bool draining;    /* GOAWAY sent: close when no stream is left */
        bool close_after_goaway;
        bool closed;
};

struct H2Server {
        unsigned n_ref;
        sd_event *event;
        SSL_CTX *tls;
        H2ServerConfig config;

        int listen_fd;
        sd_event_source *listen_source, *accept_timer;

        H2Connection *connections;
        unsigned n_connections, n_refused;

        h2_request_handler_t request_handler, headers_handler;
        void *request_userdata, *headers_userdata;

        nghttp2_session_callbacks *callbacks;
        nghttp2_option *option;

        bool shutting_down;
        sd_event_source *grace_timer;
        h2_server_shutdown_handler_t shutdown_done;
        void *shutdown_userdata;
};

static void connection_close(H2Connection *c, int error);
static H2Connection *connection_unref(H2Connection *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(H2Connection *, connection_unref);

void h2_server_config_init(H2ServerConfig *c) {
        *c = (H2ServerConfig) {
                .max_concurrent_streams = H2_SERVER_DEFAULT_MAX_CONCURRENT_STREAMS,
                .max_header_list_size = H2_SERVER_DEFAULT_MAX_HEADER_LIST_SIZE,
                .max_request_body = H2_SERVER_DEFAULT_MAX_REQUEST_BODY,
                .request_timeout_usec = H2_SERVER_DEFAULT_REQUEST_TIMEOUT_USEC,
                .idle_timeout_usec = H2_SERVER_DEFAULT_IDLE_TIMEOUT_USEC,
                .max_connections = H2_SERVER_DEFAULT_MAX_CONNECTIONS,
                .max_queued_bytes = H2_SERVER_DEFAULT_MAX_QUEUED_BYTES,
        };
}

/* --- requests ------------------------------------------------------------------ */

static H2Request *request_new(H2Connection *c, int32_t stream_id) {
        H2Request *req = calloc(1, sizeof(*req));
        if (!req)
                return NULL;
        req->n_ref = 1;
        req->conn = c;
        req->stream_id = stream_id;
        req->method = req->path = req->query = req->authority = req->scheme = NO_OFFSET;
        req->hbuf = req->hbuf_inline;
        req->halloc = sizeof(req->hbuf_inline);
        req->headers = req->headers_inline;
        req->headers_alloc = ELEMENTSOF(req->headers_inline);
        req->out = req->out_inline;
        req->out_alloc = sizeof(req->out_inline);
        return req;
}

H2Request *h2_request_ref(H2Request *req) {
        if (req)
                req->n_ref++;
        return req;
}

H2Request *h2_request_unref(H2Request *req) {
        if (!req || --req->n_ref > 0)
                return NULL;
        if (req->hbuf != req->hbuf_inline)
                free(req->hbuf);
        if (req->headers != req->headers_inline)
                free(req->headers);
        if (req->out != req->out_inline)
                free(req->out);
        free(req->body);
        free(req);
        return NULL;
}

static const char *hstr(H2Request *req, uint32_t off) {
        return off == NO_OFFSET ? NULL : req->hbuf + off;
}

const char *h2_request_get_method(H2Request *req) {
        return req ? hstr(req, req->method) : NULL;
}
const char *h2_request_get_path(H2Request *req) {
        return req ? hstr(req, req->path) : NULL;
}
const char *h2_request_get_query(H2Request *req) {
        return req ? hstr(req, req->query) : NULL;
}
const char *h2_request_get_authority(H2Request *req) {
        return req ? hstr(req, req->authority) : NULL;
}
const char *h2_request_get_scheme(H2Request *req) {
        return req ? hstr(req, req->scheme) : NULL;
}
int h2_request_get_peer_address(H2Request *req, char *buf, size_t size) {
        const struct sockaddr_storage *ss;
        const void *a;
        int family;

        if (!req || !buf)
                return -EINVAL;
        if (!req->conn)
                return -ENOTCONN;
        ss = &req->conn->peer;
        if (ss->ss_family == AF_INET) {
                family = AF_INET;
                a = &((const struct sockaddr_in *) ss)->sin_addr;
        } else if (ss->ss_family == AF_INET6) {
                const struct in6_addr *in6 = &((const struct sockaddr_in6 *) ss)->sin6_addr;

                /* A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d;
                 * the address is the IPv4 one. */
                family = IN6_IS_ADDR_V4MAPPED(in6) ? AF_INET : AF_INET6;
                a = family == AF_INET ? (const void *) &in6->s6_addr[12] : (const void *) in6;
        } else
                return -EAFNOSUPPORT;
        if (!inet_ntop(family, a, buf, (socklen_t) size))
                return -errno;
        return 0;
}

int32_t h2_request_get_stream_id(H2Request *req) {
        return req ? req->stream_id : -1;
}
void *h2_request_get_userdata(H2Request *req) {
        return req ? req->userdata : NULL;
}
void h2_request_set_userdata(H2Request *req, void *userdata) {
        if (req)
                req->userdata = userdata;
}
bool h2_request_is_closed(H2Request *req) {
        return !req || !req->conn;
}
size_t h2_request_get_n_headers(H2Request *req) {
        return req ? req->n_headers : 0;
}

const char *h2_request_get_header(H2Request *req, const char *name) {
        if (!req || !name)
                return NULL;
        for (size_t i = 0; i < req->n_headers; i++)
                if (strcasecmp(req->hbuf + req->headers[i].name, name) == 0)
                        return req->hbuf + req->headers[i].value;
        return NULL;
}

int h2_request_get_header_at(H2Request *req, size_t i, const char **ret_name, const char **ret_value) {
        if (!req)
                return -EINVAL;
        if (i >= req->n_headers)
                return -ERANGE;
        if (ret_name)
                *ret_name = req->hbuf + req->headers[i].name;
        if (ret_value)
                *ret_value = req->hbuf + req->headers[i].value;
        return 0;
}

const uint8_t *h2_request_get_body(H2Request *req, size_t *ret_size) {
        if (ret_size)
                *ret_size = req ? req->body_len : 0;
        return req && req->body ? req->body : (const uint8_t *) "";
}

size_t h2_request_get_queued(H2Request *req) {
        return req ? req->out_end - req->out_start : 0;
}

/* Grows *buf (which may still be the inline storage) to at least need
 * bytes, keeping the first used bytes. */
static int grow(void **buf, void *inline_buf, size_t *alloc, size_t used, size_t need) {
        size_t a = MAX(*alloc * 2, need);
        void *p;

        if (*buf == inline_buf) {
                p = malloc(a);
                if (p && used > 0)
                        memcpy(p, *buf, used);
        } else
                p = realloc(*buf, a);
        if (!p)
                return -ENOMEM;
        *buf = p;
        *alloc = a;
        return 0;
}

static int hbuf_add(H2Request *req, const uint8_t *s, size_t n, uint32_t *ret_off) {
        if (req->halloc - req->hlen < n + 1) {
                if (req->hlen + n + 1 > UINT32_MAX - 1)
                        return -E2BIG;
                if (grow((void **) &req->hbuf, req->hbuf_inline, &req->halloc, req->hlen, req->hlen + n + 1) < 0)
                        return -ENOMEM;
        }
        *ret_off = (uint32_t) req->hlen;
        memcpy(req->hbuf + req->hlen, s, n);
        req->hbuf[req->hlen + n] = '\0';
        req->hlen += n + 1;
        return 0;
}

static int buf_append(uint8_t **buf, void *inline_buf, size_t *start, size_t *end, size_t *alloc,
                      const void *data, size_t size) {
        if (*alloc - *end < size) {
                size_t pending = *end - *start;

                if (*start > 0) {
                        memmove(*buf, *buf + *start, pending);
                        *start = 0;
                        *end = pending;
                }
                if (*alloc - *end < size &&
                    grow((void **) buf, inline_buf, alloc, pending, pending + size) < 0)
                        return -ENOMEM;
        }
        memcpy(*buf + *end, data, size);
        *end += size;
        return 0;
}

/* --- connection bookkeeping ----------------------------------------------------- */

static void pending_remove(H2Connection *c, H2Request *req) {
        if (!req->pending)
                return;
        if (req->pending_prev)
                req->pending_prev->pending_next = req->pending_next;
        else
                c->pending_head = req->pending_next;
        if (req->pending_next)
                req->pending_next->pending_prev = req->pending_prev;
        else
                c->pending_tail = req->pending_prev;
        req->pending_prev = req->pending_next = NULL;
        req->pending = false;
}

/* The timers are lazy: they are not moved per request (that would cost a
 * priority queue update each time), but re-armed when they fire, for the
 * oldest pending request or the time the connection went idle. Every
 * request has the same timeout, so the pending list is in deadline order. */
static void drain_remove(H2Connection *c, H2Request *req) {
        if (!req->drain_pending)
                return;
        if (req->drain_prev)
                req->drain_prev->drain_next = req->drain_next;
        else
                c->drain_head = req->drain_next;
        if (req->drain_next)
                req->drain_next->drain_prev = req->drain_prev;
        else
                c->drain_tail = req->drain_prev;
        req->drain_prev = req->drain_next = NULL;
        req->drain_pending = false;
}

static void drain_add(H2Connection *c, H2Request *req) {
        if (req->drain_pending)
                return;
        req->drain_prev = c->drain_tail;
        if (c->drain_tail)
                c->drain_tail->drain_next = req;
        else
                c->drain_head = req;
        c->drain_tail = req;
        req->drain_pending = true;
}

static void request_timer_arm(H2Connection *c) {
        if (!c->request_timer || c->request_timer_armed || !c->pending_head)
                return;
        (void) sd_event_source_set_time(c->request_timer, c->pending_head->deadline);
        (void) sd_event_source_set_enabled(c->request_timer, SD_EVENT_ONESHOT);
        c->request_timer_armed = true;
}

static void idle_timer_arm(H2Connection *c, uint64_t when) {
        if (!c->idle_timer || c->closed)
                return;
        (void) sd_event_source_set_time(c->idle_timer, when);
        (void) sd_event_source_set_enabled(c->idle_timer, SD_EVENT_ONESHOT);
}

static void connection_kick(H2Connection *c) {
        if (c && !c->closed)
                h2_transport_kick(c->transport);
}

/* Detaches a request from its stream: the close handler runs once and the
 * connection's reference goes. */
static void request_detach(H2Request *req, int error) {
        H2Connection *c = req->conn;
        h2_request_close_handler_t handler = req->close_handler;

        if (!c)
                return;

        (void) nghttp2_session_set_stream_user_data(c->session, req->stream_id, NULL);
        drain_remove(c, req);
        if (req->unconsumed > 0 && !c->closed)
                (void) nghttp2_session_consume_connection(c->session, req->unconsumed);
        req->unconsumed = 0;
        pending_remove(c, req);
        if (req->stream_prev)
                req->stream_prev->stream_next = req->stream_next;
        else
                c->streams = req->stream_next;
        if (req->stream_next)
                req->stream_next->stream_prev = req->stream_prev;
        req->stream_prev = req->stream_next = NULL;
        c->n_streams--;

        req->conn = NULL;
        req->closed = true;
        req->close_handler = NULL;
        if (handler)
                handler(req, error, req->close_userdata);
        h2_request_unref(req);
}

/* --- responses ------------------------------------------------------------------ */

static ssize_t data_source_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                                size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                                void *user_data) {
        /* Looked up rather than taken from source->ptr: a request that was
         * detached (connection closing) may be gone already. */
        H2Request *req = nghttp2_session_get_stream_user_data(session, stream_id);
        size_t n;

        if (!req || req != source->ptr)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        n = MIN(length, req->out_end - req->out_start);

        if (n > 0)
                memcpy(buf, req->out + req->out_start, n);
        req->out_start += n;
        if (n > 0 && req->drain_handler && req->out_end - req->out_start <= req->drain_low_water)
                drain_add(req->conn, req);
        if (req->out_start == req->out_end) {
                req->out_start = req->out_end = 0;
                if (req->response == RESPONSE_ENDING)
                        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
                else if (n == 0) {
                        /* Resumed by h2_request_write()/h2_request_end(). */
                        req->deferred = true;
                        return NGHTTP2_ERR_DEFERRED;
                }
        }
        return (ssize_t) n;
}

static int submit_response(H2Request *req, int status, const H2Header *headers, size_t n_headers,
                           bool with_body) {
        H2Connection *c = req->conn;
        nghttp2_nv stack[16], *nva;
        char status_str[21];
        size_t n;
        int r;

        if (status < 100 || status > 999)
                return -EINVAL;
        h2_format_u64((uint64_t) status, status_str);
        r = h2_build_nva(&(H2Header) { ":status", status_str }, 1, headers, n_headers, stack,
                         ELEMENTSOF(stack), &nva, &n);
        if (r < 0)
                return r;

        nghttp2_data_provider prd = {
                .source.ptr = req,
                .read_callback = data_source_read,
        };
        r = nghttp2_submit_response(c->session, req->stream_id, nva, n, with_body ? &prd : NULL);
        if (nva != stack)
                free(nva);
        if (r < 0)
                return log_debug_errno(EIO, "nghttp2_submit_response: %s", nghttp2_strerror(r));

        /* The request timeout covers the receive phase only; once we answer
         * (e.g. a long-lived stream) it no longer applies. */
        pending_remove(c, req);
        connection_kick(c);
        return 0;
}

/* Adds content-length unless the caller gave one: clients can size their
 * buffers and tell a cut response from a complete one. */
static int respond_with_length(H2Request *req, int status, const H2Header *headers, size_t n_headers,
                               size_t size) {
        H2Header stack[16], *all = stack;
        _cleanup_free_ H2Header *heap = NULL;
        char length[32];

        /* RFC 9110 8.6: never on 204, and 304 describes another body. */
        if (status == 204 || status == 304)
                return submit_response(req, status, headers, n_headers, size > 0);
        for (size_t i = 0; i < n_headers; i++)
                if (headers[i].name && strcasecmp(headers[i].name, "content-length") == 0)
                        return submit_response(req, status, headers, n_headers, size > 0);

        if (n_headers + 1 > ELEMENTSOF(stack)) {
                heap = malloc(sizeof(H2Header) * (n_headers + 1));
                if (!heap)
                        return -ENOMEM;
                all = heap;
        }
        if (n_headers > 0)
                memcpy(all, headers, sizeof(H2Header) * n_headers);
        h2_format_u64(size, length);
        all[n_headers] = (H2Header) { "content-length", length };
        return submit_response(req, status, all, n_headers + 1, size > 0);
}

int h2_request_respond(H2Request *req, int status, const H2Header *headers, size_t n_headers,
                       const void *body, size_t size) {
        int r;

        if (!req || (size > 0 && !body))
                return -EINVAL;
        if (!req->conn)
                return -ENOTCONN;
        if (req->response != RESPONSE_NONE)
                return -EALREADY;

        if (size > 0) {
                r = buf_append(&req->out, req->out_inline, &req->out_start, &req->out_end, &req->out_alloc, body, size);
                if (r < 0)
                        return r;
        }
        req->response = RESPONSE_ENDING;
        r = respond_with_length(req, status, headers, n_headers, size);
        if (r < 0) {
                req->response = RESPONSE_NONE;
                req->out_start = req->out_end = 0;
        }
        return r;
}

int h2_request_respond_error(H2Request *req, int status, const char *description) {
        _cleanup_free_ char *body = NULL;
        int n;

        n = h2_json_error_body(status, description, &body);
        if (n < 0)
                return n;
        return h2_request_respond(req, status,
                                  (const H2Header[]) { { "content-type", "application/json" } }, 1,
                                  body, (size_t) n);
}

int h2_request_start_response(H2Request *req, int status, const H2Header *headers, size_t n_headers) {
        int r;

        if (!req)
                return -EINVAL;
        if (!req->conn)
                return -ENOTCONN;
        if (req->response != RESPONSE_NONE)
                return -EALREADY;

        req->response = RESPONSE_STREAMING;
        r = submit_response(req, status, headers, n_headers, true);
        if (r < 0)
                req->response = RESPONSE_NONE;
        return r;
}

static void request_resume(H2Request *req) {
        if (req->deferred) {
                req->deferred = false;
                (void) nghttp2_session_resume_data(req->conn->session, req->stream_id);
        }
        connection_kick(req->conn);
}

int h2_request_write(H2Request *req, const void *data, size_t size) {
        int r;

        if (!req || (size > 0 && !data))
                return -EINVAL;
        if (!req->conn)
                return -ENOTCONN;
        if (req->response == RESPONSE_ENDING)
                return -EPIPE;
        if (req->response != RESPONSE_STREAMING)
                return -EBADFD;
        if (size == 0)
                return 0;
        if (h2_request_get_queued(req) + size > req->conn->server->config.max_queued_bytes)
                return -ENOBUFS;

        r = buf_append(&req->out, req->out_inline, &req->out_start, &req->out_end, &req->out_alloc, data, size);
        if (r < 0)
                return r;
        request_resume(req);
        return 0;
}

int h2_request_end(H2Request *req) {
        if (!req)
                return -EINVAL;
        if (!req->conn)
                return -ENOTCONN;
        if (req->response == RESPONSE_ENDING)
                return -EALREADY;
        if (req->response != RESPONSE_STREAMING)
                return -EBADFD;
        req->response = RESPONSE_ENDING;
        request_resume(req);
        return 0;
}

int h2_request_reset(H2Request *req, uint32_t error_code) {
        int r;

        if (!req)
                return -EINVAL;
        if (!req->conn)
                return -ENOTCONN;
        r = nghttp2_submit_rst_stream(req->conn->session, NGHTTP2_FLAG_NONE, req->stream_id, error_code);
        if (r < 0)
                return -EIO;
        connection_kick(req->conn);
        return 0;
}

int h2_request_stream_body(H2Request *req, h2_body_chunk_handler_t chunk, h2_body_end_handler_t end,
                           void *userdata) {
        if (!req || !chunk)
                return -EINVAL;
        if (!req->conn)
                return -ENOTCONN;
        if (req->complete || req->body_len > 0)
                return -EALREADY;
        req->body_chunk = chunk;
        req->body_end = end;
        req->body_userdata = userdata;
        return 0;
}

int h2_request_pause_body(H2Request *req, bool pause) {
        if (!req)
                return -EINVAL;
        if (!req->conn)
                return -ENOTCONN;
        if (!req->body_chunk)
                return -EBADFD;
        req->body_paused = pause;
        if (!pause && req->unconsumed > 0) {
                if (nghttp2_session_consume(req->conn->session, req->stream_id, req->unconsumed) < 0)
                        return -EIO;
                req->unconsumed = 0;
                connection_kick(req->conn);
        }
        return 0;
}

int h2_request_set_drain_handler(H2Request *req, size_t low_water, h2_request_drain_handler_t handler,
                                 void *userdata) {
        if (!req)
                return -EINVAL;
        if (!req->conn)
                return -ENOTCONN;
        req->drain_handler = handler;
        req->drain_userdata = userdata;
        req->drain_low_water = low_water;
        if (!handler)
                drain_remove(req->conn, req);
        return 0;
}

int h2_request_set_close_handler(H2Request *req, h2_request_close_handler_t handler, void *userdata) {
        if (!req)
                return -EINVAL;
        if (!req->conn)
                return -ENOTCONN;
        req->close_handler = handler;
        req->close_userdata = userdata;
        return 0;
}

/* An error answer before the request is complete: the rest of the request
 * is dropped as it arrives, and the stream is reset with NO_ERROR once the
 * answer is out (RFC 9113 8.1). */
static void request_reject(H2Request *req, int status, const char *description) {
        log_debug("h2 stream %d: %d %s", req->stream_id, status, description);
        req->rejected = true;
        req->body_chunk = NULL;
        req->body_end = NULL;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_alloc = 0;
        if (req->response == RESPONSE_NONE && h2_request_respond_error(req, status, description) < 0)
                (void) h2_request_reset(req, NGHTTP2_INTERNAL_ERROR);
}

/* --- nghttp2 callbacks ---------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
        H2Connection *c = user_data;
        H2Request *req;

        if (c->closed || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
                return 0;

        req = request_new(c, frame->hd.stream_id);
        if (!req)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, req);

        req->stream_next = c->streams;
        if (c->streams)
                c->streams->stream_prev = req;
        c->streams = req;
        c->n_streams++;

        if (c->server->config.request_timeout_usec > 0 && c->request_timer) {
                uint64_t now = 0;

                (void) sd_event_now(c->server->event, CLOCK_MONOTONIC, &now);
                req->deadline = now + c->server->config.request_timeout_usec;
                req->pending = true;
                req->pending_prev = c->pending_tail;
                if (c->pending_tail)
                        c->pending_tail->pending_next = req;
                else
                        c->pending_head = req;
                c->pending_tail = req;
                request_timer_arm(c);
        }
        return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data) {
        H2Connection *c = user_data;
        H2Request *req;
        uint32_t noff, voff;
        int r;

        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
                return 0; /* trailers are not used */
        req = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (!req || req->headers_too_large)
                return 0;

        /* RFC 9113 6.5.2: name + value + 32 per field. The block is still
         * decoded to keep HPACK state in sync; we just stop storing it. */
        req->header_bytes += namelen + valuelen + 32;
        if (req->header_bytes > c->server->config.max_header_list_size) {
                req->headers_too_large = true;
                return 0;
        }

        if (namelen > 0 && name[0] == ':') {
                uint32_t *slot = NULL;

                if (namelen == 7 && memcmp(name, ":method", 7) == 0)
                        slot = &req->method;
                else if (namelen == 7 && memcmp(name, ":scheme", 7) == 0)
                        slot = &req->scheme;
                else if (namelen == 10 && memcmp(name, ":authority", 10) == 0)
                        slot = &req->authority;
                else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
                        const uint8_t *q = memchr(value, '?', valuelen);
                        if (q) {
                                r = hbuf_add(req, q + 1, valuelen - (size_t) (q - value) - 1, &req->query);
                                if (r < 0)
                                        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
                                valuelen = (size_t) (q - value);
                        }
                        slot = &req->path;
                }
                if (slot && hbuf_add(req, value, valuelen, slot) < 0)
                        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
                return 0;
        }

        if (req->n_headers == req->headers_alloc) {
                size_t bytes = req->headers_alloc * sizeof(HeaderRef);
                if (grow((void **) &req->headers, req->headers_inline, &bytes, bytes, bytes * 2) < 0)
                        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
                req->headers_alloc = bytes / sizeof(HeaderRef);
        }
        if (hbuf_add(req, name, namelen, &noff) < 0 || hbuf_add(req, value, valuelen, &voff) < 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        req->headers[req->n_headers++] = (HeaderRef) { noff, voff };
        return 0;
}

static void request_dispatch_result(H2Request *req, int r) {
        if (r < 0 && req->conn && req->response == RESPONSE_NONE) {
                log_debug_errno(r, "h2 stream %d: handler failed: %m", req->stream_id);
                (void) h2_request_respond_error(req, 500, "internal error");
        }
}

static void request_headers_done(H2Connection *c, H2Request *req) {
        H2Server *s = c->server;
        const char *cl;

        if (req->headers_too_large) {
                request_reject(req, 431, "request header fields too large");
                return;
        }

        cl = h2_request_get_header(req, "content-length");
        if (cl) {
                char *end;
                unsigned long long v;

                errno = 0;
                v = strtoull(cl, &end, 10);
                if (errno == 0 && end != cl && *end == '\0' && v > s->config.max_request_body) {
                        request_reject(req, 413, "request body too large");
                        return;
                }
        }

        if (s->headers_handler) {
                _cleanup_h2_request_ _unused_ H2Request *ref = h2_request_ref(req);
                request_dispatch_result(req, s->headers_handler(req, s->headers_userdata));
        }
}

static void request_complete(H2Connection *c, H2Request *req) {
        H2Server *s = c->server;
        _cleanup_h2_request_ _unused_ H2Request *ref = h2_request_ref(req);
        int r = 0;

        req->complete = true;
        pending_remove(c, req);

        if (req->rejected || req->response != RESPONSE_NONE) {
                if (req->body_end && req->conn)
                        r = req->body_end(req, req->body_userdata);
                request_dispatch_result(req, r);
                return;
        }

        if (req->body_chunk) {
                if (req->body_end)
                        r = req->body_end(req, req->body_userdata);
        } else if (s->request_handler)
                r = s->request_handler(req, s->request_userdata);
        else if (req->response == RESPONSE_NONE)
                r = h2_request_respond_error(req, 501, "no handler");
        request_dispatch_result(req, r);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
        H2Connection *c = user_data;
        H2Request *req;

        if (c->closed)
                return 0;
        if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
                return 0;

        req = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (!req || !req->conn)
                return 0;

        if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
                request_headers_done(c, req);

        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && req->conn && !req->complete)
                request_complete(c, req);
        return 0;
}

static void body_append(H2Connection *c, H2Request *req, const uint8_t *data, size_t len);

/* Window updates are ours to send (no_auto_window_update): data counts as
 * consumed once it is buffered or handed to a handler, unless a streaming
 * body handler paused the body; then the peer stops when the stream window
 * is used up, and resuming gives the window back. */
static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                              const uint8_t *data, size_t len, void *user_data) {
        H2Connection *c = user_data;
        H2Request *req = nghttp2_session_get_stream_user_data(session, stream_id);

        if (req && req->conn && !req->rejected && !c->closed && req->body_chunk) {
                _cleanup_h2_request_ _unused_ H2Request *ref = h2_request_ref(req);

                request_dispatch_result(req, req->body_chunk(req, data, len, req->body_userdata));
                if (req->conn && req->body_paused) {
                        req->unconsumed += len;
                        return 0;
                }
        } else
                body_append(c, req, data, len);

        if (nghttp2_session_consume(session, stream_id, len) < 0)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        return 0;
}

static void body_append(H2Connection *c, H2Request *req, const uint8_t *data, size_t len) {
        int r;

        if (!req || !req->conn || req->rejected || c->closed)
                return;
        if (req->response != RESPONSE_NONE)
                return; /* answered early: the rest is not needed */

        if (req->body_len + len > c->server->config.max_request_body) {
                request_reject(req, 413, "request body too large");
                return;
        }
        r = buf_append(&req->body, NULL, &(size_t) { 0 }, &req->body_len, &req->body_alloc, data, len);
        if (r < 0)
                request_reject(req, 500, "out of memory");
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
        H2Connection *c = user_data;

        if (frame->hd.type == NGHTTP2_GOAWAY && c->close_after_goaway) {
                h2_transport_close_after_flush(c->transport);
                return 0;
        }

        if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
                H2Request *req = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);

                if (req && req->conn && !req->complete)
                        (void) nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                                         NGHTTP2_NO_ERROR);
        }
        return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data) {
        H2Connection *c = user_data;
        H2Request *req = nghttp2_session_get_stream_user_data(session, stream_id);
        int error;

        if (!req)
                return 0;
        nghttp2_session_set_stream_user_data(session, stream_id, NULL);

        /* A stream we reset with NO_ERROR after a full answer ended fine. */
        error = h2_error_code_to_errno(error_code);
        if (error == 0 && req->response != RESPONSE_ENDING)
                error = -ECONNRESET;
        request_detach(req, error);

        if (c->draining && c->n_streams == 0)
                h2_transport_close_after_flush(c->transport);
        if (c->n_streams == 0)
                (void) sd_event_now(c->server->event, CLOCK_MONOTONIC, &c->idle_since);
        return 0;
}

static int on_error(nghttp2_session *session, int lib_error_code, const char *msg, size_t len,
                    void *user_data) {
        log_debug("h2 server: nghttp2: %.*s", (int) len, msg);
        return 0;
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame, int lib_error_code,
                            void *user_data) {
        log_debug("h2 server: invalid frame on stream %d: %s", frame->hd.stream_id,
                  nghttp2_strerror(lib_error_code));
        return 0;
}

/* --- connections --------------------------------------------------------------- */

static void connection_goaway(H2Connection *c, uint32_t error_code, const char *reason, bool close_now) {
        int32_t last = c->refused ? 0 : nghttp2_session_get_last_proc_stream_id(c->session);

        if (c->closed)
                return;
        if (nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, last, error_code,
                                  (const uint8_t *) reason, strlen(reason)) < 0) {
                h2_transport_close_after_flush(c->transport);
                return;
        }
        c->draining = true;
        if (close_now || c->n_streams == 0)
                c->close_after_goaway = true;
        connection_kick(c);
}

static int on_request_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        H2Connection *c = userdata;
        _cleanup_(connection_unrefp) _unused_ H2Connection *ref = c;

        c->n_ref++;
        c->request_timer_armed = false;
        while (c->pending_head && c->pending_head->deadline <= usec && !c->closed) {
                H2Request *req = c->pending_head;

                pending_remove(c, req);
                request_reject(req, 408, "request timeout");
        }
        if (!c->closed)
                request_timer_arm(c);
        return 0;
}

static int on_idle_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        H2Connection *c = userdata;
        uint64_t timeout = c->server->config.idle_timeout_usec ?: REFUSED_TIMEOUT_USEC;

        /* A peer that never finishes the TLS handshake, or does not read
         * our GOAWAY within another timeout, gets no more patience. */
        if (!h2_transport_is_ready(c->transport) || c->close_after_goaway) {
                log_debug("h2 server: connection stuck, closing.");
                connection_close(c, -ETIMEDOUT);
                return 0;
        }
        if (c->n_streams > 0) {
                idle_timer_arm(c, usec + timeout);
                return 0;
        }
        if (usec < c->idle_since + timeout) {
                idle_timer_arm(c, c->idle_since + timeout);
                return 0;
        }

        log_debug("h2 server: connection idle, closing.");
        connection_goaway(c, NGHTTP2_NO_ERROR, "idle timeout", true);
        idle_timer_arm(c, usec + timeout);
        return 0;
}

static int conn_on_ready(H2Transport *t, void *userdata) {
        H2Connection *c = userdata;
        const H2ServerConfig *cfg = &c->server->config;
        nghttp2_settings_entry iv[] = {
                { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->max_concurrent_streams },
                { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->max_header_list_size },
        };
        int r;

        r = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, ELEMENTSOF(iv));
        if (r < 0)
                return -EIO;
        /* Room for every stream to hold a full stream window while its body
         * is paused, so that a paused upload cannot stall the others. */
        r = nghttp2_session_set_local_window_size(
                c->session, NGHTTP2_FLAG_NONE, 0,
                (int32_t) MIN((uint64_t) cfg->max_concurrent_streams * NGHTTP2_INITIAL_WINDOW_SIZE +
                                      CONNECTION_WINDOW_EXTRA,
                              (uint64_t) NGHTTP2_MAX_WINDOW_SIZE));
        if (r < 0)
                return -EIO;
        if (c->refused)
                connection_goaway(c, NGHTTP2_REFUSED_STREAM, "too many connections", true);
        else if (c->server->shutting_down)
                connection_goaway(c, NGHTTP2_NO_ERROR, "shutdown", false);
        return 0;
}

static int conn_on_data(H2Transport *t, const uint8_t *data, size_t size, void *userdata) {
        H2Connection *c = userdata;
        _cleanup_(connection_unrefp) _unused_ H2Connection *ref = c;
        ssize_t n;

        c->n_ref++;
        n = nghttp2_session_mem_recv(c->session, data, size);
        if (n < 0) {
                log_debug("h2 server: nghttp2_session_mem_recv: %s", nghttp2_strerror((int) n));
                if (c->closed)
                        return 0;
                /* E.g. a bad client preface: try to say why, then go. */
                if (nghttp2_session_terminate_session(c->session, NGHTTP2_PROTOCOL_ERROR) < 0)
                        return -EPROTO;
                c->close_after_goaway = true;
        }
        return 0;
}

/* Drain handlers run here, outside of nghttp2's callbacks, so that they
 * may write; what they write goes out in the same flush. */
static bool run_drain_handlers(H2Connection *c) {
        bool ran = false;

        while (c->drain_head && !c->closed) {
                H2Request *req = c->drain_head;
                _cleanup_h2_request_ _unused_ H2Request *ref = h2_request_ref(req);

                drain_remove(c, req);
                if (req->drain_handler) {
                        req->drain_handler(req, req->drain_userdata);
                        ran = true;
                }
        }
        return ran;
}

static int conn_fill(H2Transport *t, void *userdata) {
        H2Connection *c = userdata;
        _cleanup_(connection_unrefp) _unused_ H2Connection *ref = c;

        c->n_ref++;
        for (;;) {
                while (h2_transport_queued(t) < H2_TRANSPORT_FILL_BYTES) {
                        const uint8_t *p;
                        ssize_t n = nghttp2_session_mem_send(c->session, &p);
                        int r;

                        if (n < 0) {
                                log_debug("h2 server: nghttp2_session_mem_send: %s", nghttp2_strerror((int) n));
                                return -EIO;
                        }
                        if (n == 0)
                                break;
                        r = h2_transport_queue(t, p, (size_t) n);
                        if (r < 0)
                                return r;
                }
                if (h2_transport_queued(t) >= H2_TRANSPORT_FILL_BYTES || !run_drain_handlers(c) || c->closed)
                        break;
        }
        if (c->closed)
                return 0;
        if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
                h2_transport_close_after_flush(t);
        return 0;
}

static void conn_on_close(H2Transport *t, int error, const char *reason, void *userdata) {
        H2Connection *c = userdata;

        log_debug_errno(error, "h2 server: connection closed: %s", strna(reason));
        connection_close(c, error);
}

static const H2TransportOps conn_ops = {
        .on_ready = conn_on_ready,
        .on_data = conn_on_data,
        .fill = conn_fill,
        .on_close = conn_on_close,
};

static H2Server *server_unref(H2Server *s);

static H2Connection *connection_unref(H2Connection *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        nghttp2_session_del(c->session);
        server_unref(c->server);
        free(c);
        return NULL;
}

static void server_check_shutdown_done(H2Server *s);

/* Idempotent. Drops the connection's own reference: a caller that uses c
 * afterwards holds one of its own. */
static void connection_close(H2Connection *c, int error) {
        H2Server *s = c->server;

        if (c->closed)
                return;
        c->closed = true;

        while (c->streams)
                request_detach(c->streams, -ECONNABORTED);

        c->request_timer = sd_event_source_disable_unref(c->request_timer);
        c->idle_timer = sd_event_source_disable_unref(c->idle_timer);
        h2_transport_close(c->transport);
        c->transport = h2_transport_unref(c->transport);

        if (c->prev)
                c->prev->next = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        if (c->refused)
                s->n_refused--;
        else
                s->n_connections--;

        server_check_shutdown_done(s);

        /* The reference an open connection holds on itself. */
        connection_unref(c);
}

static int connection_new(H2Server *s, int fd) {
        _cleanup_close_ int fd_owned = fd;
        H2Connection *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->server = s;
        s->n_ref++;
        socklen_t peer_len = sizeof(c->peer);
        if (getpeername(fd, (struct sockaddr *) &c->peer, &peer_len) < 0)
                c->peer.ss_family = AF_UNSPEC;

        r = nghttp2_session_server_new2(&c->session, s->callbacks, c, s->option);
        if (r < 0) {
                connection_unref(c);
                return -ENOMEM;
        }

        c->refused = s->n_connections >= s->config.max_connections;

        if (s->config.request_timeout_usec > 0) {
                r = sd_event_add_time(s->event, &c->request_timer, CLOCK_MONOTONIC, 0, 0,
                                      on_request_timer, c);
                if (r < 0)
                        goto fail;
                (void) sd_event_source_set_enabled(c->request_timer, SD_EVENT_OFF);
        }
        if (s->config.idle_timeout_usec > 0 || c->refused) {
                uint64_t timeout = s->config.idle_timeout_usec ?: REFUSED_TIMEOUT_USEC;
                (void) sd_event_now(s->event, CLOCK_MONOTONIC, &c->idle_since);
                r = sd_event_add_time_relative(s->event, &c->idle_timer, CLOCK_MONOTONIC, timeout, 0,
                                               on_idle_timer, c);
                if (r < 0)
                        goto fail;
        }

        /* Linked before the transport exists: on_ready may already run. */
        c->next = s->connections;
        if (s->connections)
                s->connections->prev = c;
        s->connections = c;
        if (c->refused)
                s->n_refused++;
        else
                s->n_connections++;

        r = h2_transport_new_accepted(s->event, TAKE_FD(fd_owned), s->tls, &conn_ops, c, &c->transport);
        if (r < 0) {
                connection_close(c, r);
                return r;
        }
        return 0;

fail:
        c->request_timer = sd_event_source_disable_unref(c->request_timer);
        c->idle_timer = sd_event_source_disable_unref(c->idle_timer);
        connection_unref(c);
        return r;
}

/* --- server -------------------------------------------------------------------- */

static int on_accept_resume(sd_event_source *src, uint64_t usec, void *userdata) {
        H2Server *s = userdata;

        if (s->listen_source)
                (void) sd_event_source_set_enabled(s->listen_source, SD_EVENT_ON);
        return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        H2Server *s = userdata;

        /* Bounded so a flood of connects cannot starve other sources. */
        for (unsigned i = 0; i < 64; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                break;
                        log_debug_errno(errno, "h2 server: accept: %m");
                        /* Out of file descriptors or memory: the pending
                         * connection keeps the socket readable, so stop
                         * listening for a moment instead of spinning. */
                        if (sd_event_source_set_enabled(src, SD_EVENT_OFF) >= 0) {
                                if (s->accept_timer)
                                        (void) sd_event_source_set_time_relative(s->accept_timer, ACCEPT_BACKOFF_USEC);
                                else
                                        (void) sd_event_add_time_relative(s->event, &s->accept_timer, CLOCK_MONOTONIC,
                                                                          ACCEPT_BACKOFF_USEC, 0, on_accept_resume, s);
                                if (s->accept_timer)
                                        (void) sd_event_source_set_enabled(s->accept_timer, SD_EVENT_ONESHOT);
                        }
                        break;
                }
                /* Beyond the refusal budget we cannot even say why. */
                if (s->n_connections >= s->config.max_connections &&
                    s->n_refused >= 16 + s->config.max_connections / 4) {
                        safe_close(cfd);
                        continue;
                }
                int r = connection_new(s, cfd);
                if (r < 0)
                        log_debug_errno(r, "h2 server: failed to set up connection: %m");
        }
        return 0;
}

int h2_server_new(sd_event *e, const H2ServerConfig *config, SSL_CTX *tls, H2Server **ret) {
        H2Server *s;

        if (!e || !ret)
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->n_ref = 1;
        s->listen_fd = -1;
        s->event = sd_event_ref(e);
        if (config)
                s->config = *config;
        else
                h2_server_config_init(&s->config);
        if (s->config.max_concurrent_streams == 0 || s->config.max_header_list_size == 0 ||
            s->config.max_connections == 0 || s->config.max_queued_bytes == 0) {
                server_unref(s);
                return -EINVAL;
        }
        if (tls) {
                SSL_CTX_up_ref(tls);
                s->tls = tls;
        }

        if (nghttp2_session_callbacks_new(&s->callbacks) != 0 || nghttp2_option_new(&s->option) != 0) {
                server_unref(s);
                return -ENOMEM;
        }
        nghttp2_session_callbacks_set_on_begin_headers_callback(s->callbacks, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(s->callbacks, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(s->callbacks, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->callbacks, on_data_chunk_recv);
        nghttp2_session_callbacks_set_on_frame_send_callback(s->callbacks, on_frame_send);
        nghttp2_session_callbacks_set_on_stream_close_callback(s->callbacks, on_stream_close);
        nghttp2_session_callbacks_set_error_callback2(s->callbacks, on_error);
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(s->callbacks, on_invalid_frame);
        nghttp2_option_set_no_auto_window_update(s->option, 1);

        *ret = s;
        return 0;
}

static H2Server *server_unref(H2Server *s) {
        if (!s || --s->n_ref > 0)
                return NULL;
        s->listen_source = sd_event_source_disable_unref(s->listen_source);
        s->accept_timer = sd_event_source_disable_unref(s->accept_timer);
        s->grace_timer = sd_event_source_disable_unref(s->grace_timer);
        s->listen_fd = safe_close(s->listen_fd);
        nghttp2_session_callbacks_del(s->callbacks);
        nghttp2_option_del(s->option);
        if (s->tls)
                SSL_CTX_free(s->tls);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

static void server_close_listener(H2Server *s) {
        s->listen_source = sd_event_source_disable_unref(s->listen_source);
        s->accept_timer = sd_event_source_disable_unref(s->accept_timer);
        s->listen_fd = safe_close(s->listen_fd);
}

H2Server *h2_server_free(H2Server *s) {
        if (!s)
                return NULL;
        s->shutdown_done = NULL;
        server_close_listener(s);
        s->grace_timer = sd_event_source_disable_unref(s->grace_timer);
        while (s->connections) {
                H2Connection *c = s->connections;
                c->n_ref++;
                connection_close(c, -ECONNABORTED);
                connection_unref(c);
        }
        return server_unref(s);
}

int h2_server_adopt_fd(H2Server *s, int fd) {
        _cleanup_close_ int owned = fd;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int r, flags;

        if (!s || fd < 0)
                return -EINVAL;
        if (s->listen_fd >= 0)
                return -EBUSY;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return negative_errno();
        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return negative_errno();

        r = sd_event_add_io(s->event, &s->listen_source, fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        s->listen_fd = TAKE_FD(owned);
        return 0;
}

int h2_server_adopt_connection(H2Server *s, int fd) {
        _cleanup_close_ int owned = fd;
        int flags;

        if (!s || fd < 0)
                return -EINVAL;
        if (s->shutting_down)
                return -ESHUTDOWN;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return negative_errno();
        return connection_new(s, TAKE_FD(owned));
}

int h2_server_listen(H2Server *s, const char *address, uint16_t port) {
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        } sa = {};
        socklen_t salen;
        _cleanup_close_ int fd = -1;
        int one = 1;

        if (!s)
                return -EINVAL;

        if (!address || !*address || inet_pton(AF_INET6, address, &sa.in6.sin6_addr) == 1) {
                sa.in6.sin6_family = AF_INET6;
                sa.in6.sin6_port = htons(port);
                salen = sizeof(sa.in6);
        } else if (inet_pton(AF_INET, address, &sa.in.sin_addr) == 1) {
                sa.in.sin_family = AF_INET;
                sa.in.sin_port = htons(port);
                salen = sizeof(sa.in);
        } else
                return -EINVAL; /* numeric addresses only: no blocking DNS */

        fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0)
                return negative_errno();
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return negative_errno();
        if (sa.sa.sa_family == AF_INET6 && (!address || !*address)) {
                int zero = 0;
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        }
        if (bind(fd, &sa.sa, salen) < 0)
                return negative_errno();
        if (listen(fd, SOMAXCONN) < 0)
                return negative_errno();

        return h2_server_adopt_fd(s, TAKE_FD(fd));
}

int h2_server_get_port(H2Server *s) {
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        } sa;
        socklen_t len = sizeof(sa);

        if (!s)
                return -EINVAL;
        if (s->listen_fd < 0)
                return -EBADF;
        if (getsockname(s->listen_fd, &sa.sa, &len) < 0)
                return negative_errno();
        if (sa.sa.sa_family == AF_INET)
                return ntohs(sa.in.sin_port);
        if (sa.sa.sa_family == AF_INET6)
                return ntohs(sa.in6.sin6_port);
        return -EAFNOSUPPORT;
}

void h2_server_set_request_handler(H2Server *s, h2_request_handler_t handler, void *userdata) {
        if (!s)
                return;
        s->request_handler = handler;
        s->request_userdata = userdata;
}

void h2_server_set_headers_handler(H2Server *s, h2_request_handler_t handler, void *userdata) {
        if (!s)
                return;
        s->headers_handler = handler;
        s->headers_userdata = userdata;
}

unsigned h2_server_get_n_connections(H2Server *s) {
        return s ? s->n_connections : 0;
}

static void server_check_shutdown_done(H2Server *s) {
        h2_server_shutdown_handler_t done = s->shutdown_done;

        if (!s->shutting_down || s->connections || !done)
                return;
        s->shutdown_done = NULL;
        s->grace_timer = sd_event_source_disable_unref(s->grace_timer);
        done(s, s->shutdown_userdata);
}

static int on_grace_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        H2Server *s = userdata;

        s->n_ref++;
        while (s->connections) {
                H2Connection *c = s->connections;
                c->n_ref++;
                connection_close(c, -ECONNABORTED);
                connection_unref(c);
        }
        server_unref(s);
        return 0;
}

int h2_server_shutdown(H2Server *s, uint64_t grace_usec, h2_server_shutdown_handler_t done, void *userdata) {
        int r;

        if (!s)
                return -EINVAL;
        if (s->shutting_down)
                return -EALREADY;
        s->shutting_down = true;
        s->shutdown_done = done;
        s->shutdown_userdata = userdata;
        server_close_listener(s);

        for (H2Connection *c = s->connections; c; c = c->next)
                if (h2_transport_is_ready(c->transport))
                        connection_goaway(c, NGHTTP2_NO_ERROR, "shutdown", false);

        if (!s->connections) {
                if (done) {
                        s->shutdown_done = NULL;
                        done(s, userdata);
                }
                return 0;
        }
        r = sd_event_add_time_relative(s->event, &s->grace_timer, CLOCK_MONOTONIC, grace_usec, 0,
                                       on_grace_timer, s);
        return r < 0 ? r : 0;
}
