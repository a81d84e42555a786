/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>

#include "h2-client.h"
#include "h2-transport.h"
#include "log.h"

/* 100 stream windows and then some. */
#define CONNECTION_WINDOW (100 * NGHTTP2_INITIAL_WINDOW_SIZE + 1024 * 1024)

struct H2ClientRequest {
        unsigned n_ref;
        H2Client *client; /* NULL once done, cancelled or detached */
        int32_t stream_id;
        H2ClientRequest *prev, *next;

        H2ClientRequestCallbacks cb;
        void *userdata;

        uint8_t *out;
        size_t out_start, out_end, out_alloc;
        bool out_eof;
        bool deferred;
        bool has_body;

        int status;
        char **headers; /* name, value, name, value, ... */
        size_t n_headers, headers_alloc;
        uint8_t *body;
        size_t body_len, body_alloc;

        sd_event_source *timer;
        uint64_t timeout_usec;

        size_t unconsumed; /* received while paused */
        bool paused;
        bool response_complete;
        bool done;
        uint32_t h2_error;
};

struct H2Client {
        unsigned n_ref;
        sd_event *event;
        H2Transport *transport;
        nghttp2_session *session;
        H2ClientConfig config;
        H2ClientCallbacks cb;
        void *userdata;
        char *authority;
        const char *scheme;

        H2ClientRequest *requests;

        bool goaway_received, shutting_down, closed;
        uint32_t goaway_code;
        char *goaway_debug;
};

void h2_client_config_init(H2ClientConfig *c) {
        *c = (H2ClientConfig) {
                .connect_timeout_usec = H2_CLIENT_DEFAULT_CONNECT_TIMEOUT_USEC,
                .request_timeout_usec = 0,
                .max_response_body = H2_CLIENT_DEFAULT_MAX_RESPONSE_BODY,
        };
}

/* --- requests ------------------------------------------------------------------ */

H2ClientRequest *h2_client_request_ref(H2ClientRequest *req) {
        if (req)
                req->n_ref++;
        return req;
}

H2ClientRequest *h2_client_request_unref(H2ClientRequest *req) {
        if (!req || --req->n_ref > 0)
                return NULL;
        req->timer = sd_event_source_disable_unref(req->timer);
        for (size_t i = 0; i < req->n_headers * 2; i++)
                free(req->headers[i]);
        free(req->headers);
        free(req->body);
        free(req->out);
        free(req);
        return NULL;
}

static void client_kick(H2Client *c) {
        if (c && !c->closed)
                h2_transport_kick(c->transport);
}

/* Unlinks from the client and drops the client's reference; the stream's
 * user data is cleared so nghttp2 callbacks no longer find it. */
static void request_detach(H2ClientRequest *req) {
        H2Client *c = req->client;

        if (!c)
                return;
        if (req->prev)
                req->prev->next = req->next;
        else
                c->requests = req->next;
        if (req->next)
                req->next->prev = req->prev;
        req->prev = req->next = NULL;
        req->client = NULL;
        req->done = true;
        req->timer = sd_event_source_disable_unref(req->timer);
        if (c->session && req->stream_id > 0)
                (void) nghttp2_session_set_stream_user_data(c->session, req->stream_id, NULL);
        if (c->session && req->unconsumed > 0 && !c->closed) {
                (void) nghttp2_session_consume_connection(c->session, req->unconsumed);
                client_kick(c);
        }
        req->unconsumed = 0;
        h2_client_request_unref(req);
}

static void request_complete(H2ClientRequest *req, int error) {
        void (*complete)(H2ClientRequest *, int, void *) = req->cb.on_complete;
        _cleanup_h2_client_request_ _unused_ H2ClientRequest *ref = h2_client_request_ref(req);

        if (req->done)
                return;
        request_detach(req);
        if (complete)
                complete(req, error, req->userdata);
}


int h2_client_request_cancel(H2ClientRequest *req) {
        H2Client *c;

        if (!req)
                return -EINVAL;
        c = req->client;
        if (!c || req->done)
                return -EALREADY;
        if (req->stream_id > 0 && !c->closed) {
                (void) nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, req->stream_id,
                                                 NGHTTP2_CANCEL);
                client_kick(c);
        }
        request_detach(req);
        return 0;
}

static int buf_append(uint8_t **buf, size_t *start, size_t *end, size_t *alloc, const void *data,
                      size_t size) {
        if (*alloc - *end < size) {
                size_t pending = *end - *start;

                if (*start > 0) {
                        memmove(*buf, *buf + *start, pending);
                        *start = 0;
                        *end = pending;
                }
                if (*alloc - *end < size) {
                        size_t a = MAX(*alloc * 2, pending + size);
                        uint8_t *p = realloc(*buf, a);
                        if (!p)
                                return -ENOMEM;
                        *buf = p;
                        *alloc = a;
                }
        }
        memcpy(*buf + *end, data, size);
        *end += size;
        return 0;
}

static void request_resume(H2ClientRequest *req) {
        H2Client *c = req->client;

        if (req->deferred && req->stream_id > 0) {
                req->deferred = false;
                (void) nghttp2_session_resume_data(c->session, req->stream_id);
        }
        client_kick(c);
}

int h2_client_request_write(H2ClientRequest *req, const void *data, size_t size) {
        int r;

        if (!req || (size > 0 && !data))
                return -EINVAL;
        if (!req->client || req->done)
                return -ENOTCONN;
        if (!req->has_body || req->out_eof)
                return -EPIPE;
        if (size == 0)
                return 0;
        r = buf_append(&req->out, &req->out_start, &req->out_end, &req->out_alloc, data, size);
        if (r < 0)
                return r;
        request_resume(req);
        return 0;
}

size_t h2_client_request_get_queued(H2ClientRequest *req) {
        return req ? req->out_end - req->out_start : 0;
}

int h2_client_request_end(H2ClientRequest *req) {
        if (!req)
                return -EINVAL;
        if (!req->client || req->done)
                return -ENOTCONN;
        if (!req->has_body || req->out_eof)
                return -EALREADY;
        req->out_eof = true;
        request_resume(req);
        return 0;
}

static int on_request_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        H2ClientRequest *req = userdata;
        H2Client *c = req->client;

        if (c && req->stream_id > 0 && !c->closed) {
                (void) nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, req->stream_id,
                                                 NGHTTP2_CANCEL);
                client_kick(c);
        }
        request_complete(req, -ETIMEDOUT);
        return 0;
}

int h2_client_request_pause(H2ClientRequest *req, bool pause) {
        H2Client *c;

        if (!req)
                return -EINVAL;
        c = req->client;
        if (!c || req->done)
                return -ENOTCONN;
        if (!req->cb.on_data)
                return -EBADFD;
        req->paused = pause;
        if (!pause && req->unconsumed > 0) {
                if (nghttp2_session_consume(c->session, req->stream_id, req->unconsumed) < 0)
                        return -EIO;
                req->unconsumed = 0;
                client_kick(c);
        }
        return 0;
}

int h2_client_request_set_timeout(H2ClientRequest *req, uint64_t usec) {
        H2Client *c;

        if (!req)
                return -EINVAL;
        c = req->client;
        if (!c || req->done)
                return -ENOTCONN;
        req->timer = sd_event_source_disable_unref(req->timer);
        if (usec == 0)
                return 0;
        return sd_event_add_time_relative(c->event, &req->timer, CLOCK_MONOTONIC, usec, 0,
                                          on_request_timeout, req);
}

int h2_client_request_get_status(H2ClientRequest *req) {
        return req ? req->status : -EINVAL;
}

const char *h2_client_request_get_header(H2ClientRequest *req, const char *name) {
        if (!req || !name)
                return NULL;
        for (size_t i = 0; i < req->n_headers; i++)
                if (strcasecmp(req->headers[2 * i], name) == 0)
                        return req->headers[2 * i + 1];
        return NULL;
}

size_t h2_client_request_get_n_headers(H2ClientRequest *req) {
        return req ? req->n_headers : 0;
}

int h2_client_request_get_header_at(H2ClientRequest *req, size_t i, const char **ret_name,
                                    const char **ret_value) {
        if (!req)
                return -EINVAL;
        if (i >= req->n_headers)
                return -ERANGE;
        if (ret_name)
                *ret_name = req->headers[2 * i];
        if (ret_value)
                *ret_value = req->headers[2 * i + 1];
        return 0;
}

const uint8_t *h2_client_request_get_body(H2ClientRequest *req, size_t *ret_size) {
        if (ret_size)
                *ret_size = req ? req->body_len : 0;
        return req && req->body ? req->body : (const uint8_t *) "";
}

uint32_t h2_client_request_get_h2_error(H2ClientRequest *req) {
        return req ? req->h2_error : 0;
}

int32_t h2_client_request_get_stream_id(H2ClientRequest *req) {
        return req ? req->stream_id : -1;
}

bool h2_client_request_is_done(H2ClientRequest *req) {
        return !req || req->done;
}

void *h2_client_request_get_userdata(H2ClientRequest *req) {
        return req ? req->userdata : NULL;
}

static ssize_t data_source_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                                size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                                void *user_data) {
        /* Looked up rather than taken from source->ptr: a cancelled request
         * may be gone while its RST_STREAM is still queued. */
        H2ClientRequest *req = nghttp2_session_get_stream_user_data(session, stream_id);
        size_t n;

        if (!req || req != source->ptr)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        n = MIN(length, req->out_end - req->out_start);

        if (n > 0)
                memcpy(buf, req->out + req->out_start, n);
        req->out_start += n;
        if (req->out_start == req->out_end) {
                req->out_start = req->out_end = 0;
                if (req->out_eof)
                        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
                else if (n == 0) {
                        req->deferred = true;
                        return NGHTTP2_ERR_DEFERRED;
                }
        }
        return (ssize_t) n;
}

int h2_client_request(H2Client *c, const char *method, const char *path, const H2Header *headers,
                      size_t n_headers, const void *body, size_t size, unsigned flags,
                      const H2ClientRequestCallbacks *callbacks, void *userdata, H2ClientRequest **ret) {
        nghttp2_nv stack[16], *nva = NULL;
        H2ClientRequest *req;
        size_t n;
        int32_t id;
        int r;

        if (!c || !method || !*method || !path || path[0] != '/' || (size > 0 && !body))
                return -EINVAL;
        if (!h2_client_is_usable(c))
                return -ENOTCONN;

        H2Header pseudo[] = {
                { ":method", method },
                { ":scheme", c->scheme },
                { ":authority", c->authority },
                { ":path", path },
        };
        r = h2_build_nva(pseudo, ELEMENTSOF(pseudo), headers, n_headers, stack, ELEMENTSOF(stack), &nva, &n);
        if (r < 0)
                return r;
        _cleanup_free_ _unused_ nghttp2_nv *nva_heap = nva != stack ? nva : NULL;

        req = calloc(1, sizeof(*req));
        if (!req)
                return -ENOMEM;
        req->n_ref = 1;
        req->client = c;
        req->userdata = userdata;
        if (callbacks)
                req->cb = *callbacks;
        req->has_body = size > 0 || (flags & H2_CLIENT_REQUEST_STREAM_BODY);
        req->out_eof = !(flags & H2_CLIENT_REQUEST_STREAM_BODY);
        if (size > 0) {
                r = buf_append(&req->out, &req->out_start, &req->out_end, &req->out_alloc, body, size);
                if (r < 0) {
                        h2_client_request_unref(req);
                        return r;
                }
        }

        nghttp2_data_provider prd = {
                .source.ptr = req,
                .read_callback = data_source_read,
        };
        id = nghttp2_submit_request(c->session, NULL, nva, n, req->has_body ? &prd : NULL, req);
        if (id < 0) {
                h2_client_request_unref(req);
                return log_debug_errno(id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? EADDRNOTAVAIL : EIO,
                                       "nghttp2_submit_request: %s", nghttp2_strerror(id));
        }
        req->stream_id = id;

        req->next = c->requests;
        if (c->requests)
                c->requests->prev = req;
        c->requests = req;

        if (c->config.request_timeout_usec > 0) {
                r = h2_client_request_set_timeout(req, c->config.request_timeout_usec);
                if (r < 0) {
                        (void) h2_client_request_cancel(req);
                        return r;
                }
        }

        client_kick(c);
        if (ret)
                *ret = h2_client_request_ref(req);
        return 0;
}

/* --- nghttp2 callbacks ---------------------------------------------------------- */

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data) {
        H2ClientRequest *req;

        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_RESPONSE)
                return 0;
        req = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (!req)
                return 0;

        if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
                int status = 0;
                for (size_t i = 0; i < valuelen && i < 3; i++)
                        status = status * 10 + (value[i] - '0');
                if (status >= 200) {
                        /* A final response replaces what 1xx left. */
                        for (size_t i = 0; i < req->n_headers * 2; i++)
                                free(req->headers[i]);
                        req->n_headers = 0;
                }
                req->status = status;
                return 0;
        }
        if (namelen > 0 && name[0] == ':')
                return 0;

        if (req->n_headers == req->headers_alloc) {
                size_t a = MAX(req->headers_alloc * 2, (size_t) 8);
                char **p = reallocarray(req->headers, a * 2, sizeof(char *));
                if (!p)
                        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
                req->headers = p;
                req->headers_alloc = a;
        }
        char *n = strndup((const char *) name, namelen), *v = strndup((const char *) value, valuelen);
        if (!n || !v) {
                free(n);
                free(v);
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        req->headers[2 * req->n_headers] = n;
        req->headers[2 * req->n_headers + 1] = v;
        req->n_headers++;
        return 0;
}

static void request_fail(H2ClientRequest *req, int error) {
        H2Client *c = req->client;

        if (c && req->stream_id > 0 && !c->closed)
                (void) nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, req->stream_id,
                                                 NGHTTP2_CANCEL);
        request_complete(req, error);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
        H2Client *c = user_data;
        H2ClientRequest *req;

        if (c->closed)
                return 0;
        if (frame->hd.type == NGHTTP2_GOAWAY) {
                c->goaway_received = true;
                c->goaway_code = frame->goaway.error_code;
                free(c->goaway_debug);
                c->goaway_debug = strndup((const char *) frame->goaway.opaque_data,
                                          frame->goaway.opaque_data_len);
                log_debug("h2 client: GOAWAY %s \"%s\"", nghttp2_http2_strerror(c->goaway_code),
                          strna(c->goaway_debug));
                if (c->cb.on_goaway)
                        c->cb.on_goaway(c, c->goaway_code, c->goaway_debug ?: "", c->userdata);
                return 0;
        }

        if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
                return 0;
        req = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (!req || req->done)
                return 0;

        if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE &&
            req->status >= 200 && req->cb.on_response) {
                _cleanup_h2_client_request_ _unused_ H2ClientRequest *ref = h2_client_request_ref(req);
                int r = req->cb.on_response(req, req->status, req->userdata);
                if (r < 0) {
                        request_fail(req, r);
                        return 0;
                }
                if (req->done)
                        return 0;
        }

        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && req->status >= 200)
                req->response_complete = true;
        return 0;
}

static void response_data(H2Client *c, H2ClientRequest *req, const uint8_t *data, size_t len) {
        int r;

        if (req->cb.on_data) {
                r = req->cb.on_data(req, data, len, req->userdata);
                if (r < 0)
                        request_fail(req, r);
                return;
        }
        if (req->body_len + len > c->config.max_response_body) {
                request_fail(req, -EFBIG);
                return;
        }
        r = buf_append(&req->body, &(size_t) { 0 }, &req->body_len, &req->body_alloc, data, len);
        if (r < 0)
                request_fail(req, r);
}

/* As in the server, window updates are ours: data counts as consumed once
 * delivered, unless the caller paused the response. */
static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                              const uint8_t *data, size_t len, void *user_data) {
        H2Client *c = user_data;
        H2ClientRequest *req = nghttp2_session_get_stream_user_data(session, stream_id);

        if (req && !req->done && !c->closed) {
                _cleanup_h2_client_request_ _unused_ H2ClientRequest *ref = h2_client_request_ref(req);

                response_data(c, req, data, len);
                if (!req->done && req->paused) {
                        req->unconsumed += len;
                        return 0;
                }
        }
        if (nghttp2_session_consume(session, stream_id, len) < 0)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data) {
        H2Client *c = user_data;
        H2ClientRequest *req = nghttp2_session_get_stream_user_data(session, stream_id);
        int error;

        if (!req)
                goto check_drain;

        req->h2_error = error_code;
        if (req->response_complete)
                error = 0; /* e.g. RST_STREAM NO_ERROR after an early answer */
        else {
                error = h2_error_code_to_errno(error_code);
                if (error == 0)
                        error = -ECONNRESET;
        }
        request_complete(req, error);

check_drain:
        if ((c->shutting_down || c->goaway_received) && !c->requests && !c->closed)
                h2_transport_close_after_flush(c->transport);
        return 0;
}

static int on_error(nghttp2_session *session, int lib_error_code, const char *msg, size_t len,
                    void *user_data) {
        log_debug("h2 client: nghttp2: %.*s", (int) len, msg);
        return 0;
}

/* --- connection ----------------------------------------------------------------- */

static void client_close(H2Client *c, int error, const char *reason) {
        void (*on_close)(H2Client *, int, const char *, void *) = c->cb.on_close;
        _cleanup_free_ char *reason_copy = NULL;

        if (c->closed)
                return;
        c->closed = true;
        reason_copy = reason ? strdup(reason) : NULL;
        h2_transport_close(c->transport);
        c->transport = h2_transport_unref(c->transport);

        while (c->requests)
                request_complete(c->requests, -ECONNABORTED);
        if (on_close)
                on_close(c, error, reason_copy, c->userdata);
}

static int client_on_ready(H2Transport *t, void *userdata) {
        return 0;
}

static int client_on_data(H2Transport *t, const uint8_t *data, size_t size, void *userdata) {
        H2Client *c = userdata;
        _cleanup_h2_client_ _unused_ H2Client *ref = h2_client_ref(c);
        ssize_t n;

        n = nghttp2_session_mem_recv(c->session, data, size);
        if (n < 0 && !c->closed) {
                log_debug("h2 client: nghttp2_session_mem_recv: %s", nghttp2_strerror((int) n));
                return -EPROTO;
        }
        return 0;
}

static int client_fill(H2Transport *t, void *userdata) {
        H2Client *c = userdata;

        while (h2_transport_queued(t) < H2_TRANSPORT_FILL_BYTES) {
                const uint8_t *p;
                ssize_t n = nghttp2_session_mem_send(c->session, &p);
                int r;

                if (n < 0)
                        return -EIO;
                if (n == 0)
                        break;
                r = h2_transport_queue(t, p, (size_t) n);
                if (r < 0)
                        return r;
        }
        if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
                h2_transport_close_after_flush(t);
        return 0;
}

static void client_on_close(H2Transport *t, int error, const char *reason, void *userdata) {
        H2Client *c = userdata;
        _cleanup_h2_client_ _unused_ H2Client *ref = h2_client_ref(c);

        if (c->goaway_received && (error == 0 || error == -ECONNRESET || error == -EPIPE)) {
                /* Announced: the peer's GOAWAY says why, however the socket
                 * ended (a reset is common when the peer closes with our
                 * frames unread). */
                error = h2_error_code_to_errno(c->goaway_code);
                reason = c->goaway_debug && *c->goaway_debug ? c->goaway_debug : reason;
        } else if (error == 0 && !c->shutting_down) {
                error = -ECONNRESET;
                reason = reason ?: "connection closed by peer";
        }
        client_close(c, error, reason);
}

static const H2TransportOps client_ops = {
        .on_ready = client_on_ready,
        .on_data = client_on_data,
        .fill = client_fill,
        .on_close = client_on_close,
};

static int parse_address(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len) {
        struct sockaddr_in *in = (struct sockaddr_in *) ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;
        char buf[INET6_ADDRSTRLEN + 2];
        size_t n = strlen(host);

        memset(ss, 0, sizeof(*ss));
        if (streq(host, "localhost"))
                host = "127.0.0.1";
        else if (host[0] == '[' && n > 2 && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
                memcpy(buf, host + 1, n - 2);
                buf[n - 2] = '\0';
                host = buf;
        }

        if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons(port);
                *len = sizeof(*in);
                return 0;
        }
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                *len = sizeof(*in6);
                return 0;
        }
        return -EADDRNOTAVAIL;
}

H2Client *h2_client_ref(H2Client *c) {
        if (c)
                c->n_ref++;
        return c;
}

H2Client *h2_client_unref(H2Client *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        c->n_ref = 1; /* no callback may free us again */
        c->cb.on_close = NULL;
        c->closed = true;
        h2_transport_close(c->transport);
        c->transport = h2_transport_unref(c->transport);
        while (c->requests)
                request_detach(c->requests);
        nghttp2_session_del(c->session);
        sd_event_unref(c->event);
        free(c->authority);
        free(c->goaway_debug);
        free(c);
        return NULL;
}

int h2_client_new(sd_event *e, const char *host, uint16_t port, SSL_CTX *tls, const char *server_name,
                  const H2ClientConfig *config, const H2ClientCallbacks *callbacks, void *userdata,
                  H2Client **ret) {
        _cleanup_h2_client_ H2Client *c = NULL;
        _cleanup_free_ char *name_buf = NULL;
        nghttp2_session_callbacks *cbs;
        nghttp2_option *opt;
        struct sockaddr_storage ss;
        socklen_t sslen;
        const char *name;
        int r;

        if (!e || !host || port == 0 || !ret)
                return -EINVAL;
        r = parse_address(host, port, &ss, &sslen);
        if (r < 0)
                return log_debug_errno(r, "h2 client: \"%s\" is not a numeric address.", host);
        name = server_name ?: host;
        if (name[0] == '[') {
                /* "[::1]" names the address "::1". */
                size_t n = strlen(name);
                if (n < 3 || name[n - 1] != ']')
                        return -EINVAL;
                name_buf = strndup(name + 1, n - 2);
                if (!name_buf)
                        return -ENOMEM;
                name = name_buf;
        }

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->event = sd_event_ref(e);
        if (config)
                c->config = *config;
        else
                h2_client_config_init(&c->config);
        if (c->config.max_response_body == 0)
                c->config.max_response_body = H2_CLIENT_DEFAULT_MAX_RESPONSE_BODY;
        if (callbacks)
                c->cb = *callbacks;
        c->userdata = userdata;
        c->scheme = tls ? "https" : "http";
        if (asprintf(&c->authority, strchr(name, ':') ? "[%s]:%u" : "%s:%u", name, port) < 0) {
                c->authority = NULL;
                return -ENOMEM;
        }

        if (nghttp2_session_callbacks_new(&cbs) != 0)
                return -ENOMEM;
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        nghttp2_session_callbacks_set_error_callback2(cbs, on_error);
        if (nghttp2_option_new(&opt) != 0) {
                nghttp2_session_callbacks_del(cbs);
                return -ENOMEM;
        }
        nghttp2_option_set_no_auto_window_update(opt, 1);
        r = nghttp2_session_client_new2(&c->session, cbs, c, opt);
        nghttp2_session_callbacks_del(cbs);
        nghttp2_option_del(opt);
        if (r != 0)
                return -ENOMEM;
        /* A paused response must not stall the others: room for many
         * full stream windows at connection level. */
        r = nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW);
        if (r != 0)
                return -EIO;
        r = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE,
                                    (const nghttp2_settings_entry[]) {
                                            { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
                                    },
                                    1);
        if (r != 0)
                return -EIO;

        r = h2_transport_connect(e, (struct sockaddr *) &ss, sslen, tls, name, c->config.connect_timeout_usec,
                                 &client_ops, c, &c->transport);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

int h2_client_shutdown(H2Client *c) {
        if (!c)
                return -EINVAL;
        if (c->closed)
                return -ENOTCONN;
        if (c->shutting_down)
                return -EALREADY;
        c->shutting_down = true;
        (void) nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
        if (!c->requests)
                h2_transport_close_after_flush(c->transport);
        client_kick(c);
        return 0;
}

bool h2_client_is_connected(H2Client *c) {
        return c && !c->closed && h2_transport_is_ready(c->transport);
}

bool h2_client_is_usable(H2Client *c) {
        return c && !c->closed && !c->shutting_down && !c->goaway_received;
}
