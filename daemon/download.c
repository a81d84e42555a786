/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backoff.h"
#include "download.h"
#include "h2-client.h"
#include "log.h"
#include "package.h"
#include "tls.h"

#define DOWNLOAD_RETRY_INITIAL_DEFAULT (1 * USEC_PER_SEC)
#define DOWNLOAD_RETRY_MAX_DEFAULT (60 * USEC_PER_SEC)
#define DOWNLOAD_RETRY_ATTEMPTS_DEFAULT 5
#define DOWNLOAD_STALL_TIMEOUT_DEFAULT (60 * USEC_PER_SEC)
/* Debian's bundle of the system's trusted CAs. */
#define DOWNLOAD_CA_FILE_DEFAULT "/etc/ssl/certs/ca-certificates.crt"

struct download {
        sd_event *event;
        char *host, *url_path, *file;
        uint16_t port;
        bool tls;
        char *ca_file;
        SSL_CTX *ssl;
        usec_t request_timeout;
        usec_t stall_timeout;
        sd_event_source *stall_timer;   /* no byte for that long: retry */

        download_callbacks cb;
        void *userdata;

        H2Client *client;
        H2ClientRequest *req;
        sd_event_source *timer;         /* retries and deferred completion */
        backoff *backoff;
        int fd;

        uint64_t have, total;
        char *etag;
        bool running;
        bool restarted;                 /* truncated once after a bad 416 */
        unsigned attempts;

        /* Per request. */
        int status;
        bool complete;                  /* 416 says we have it all */
        bool again;                     /* retry at once (after truncation) */
        int fatal;                      /* fail without retry */
        char *fatal_reason;

        /* Deferred on_done. */
        bool done_pending;
        int done_error;
        char *done_reason;
};

int download_parse_url(const char *url, bool *ret_tls, char **ret_host, uint16_t *ret_port,
                       char **ret_path) {
        return package_url_parse(url, ret_tls, ret_host, ret_port, ret_path);
}

int download_new(sd_event *e, const char *url, const char *path, const download_options *options,
                 const download_callbacks *callbacks, void *userdata, download **ret) {
        _cleanup_download_ download *d = NULL;
        download_options o = options ? *options : (download_options) {};
        int r;

        if (!e || !url || !path || !callbacks || !callbacks->on_done || !ret)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->fd = -1;
        d->event = sd_event_ref(e);
        r = download_parse_url(url, &d->tls, &d->host, &d->port, &d->url_path);
        if (r < 0)
                return r;
        d->file = strdup(path);
        if (!d->file)
                return -ENOMEM;
        if (o.ca_file) {
                d->ca_file = strdup(o.ca_file);
                if (!d->ca_file)
                        return -ENOMEM;
        }
        r = backoff_new(&(backoff_config) {
                                .initial = o.retry_initial ?: DOWNLOAD_RETRY_INITIAL_DEFAULT,
                                .max = MAX(o.retry_max ?: DOWNLOAD_RETRY_MAX_DEFAULT,
                                           o.retry_initial ?: DOWNLOAD_RETRY_INITIAL_DEFAULT),
                                .max_attempts = o.retry_attempts ?: DOWNLOAD_RETRY_ATTEMPTS_DEFAULT,
                        },
                        &d->backoff);
        if (r < 0)
                return r;
        d->request_timeout = o.request_timeout;
        d->stall_timeout = o.stall_timeout ?: DOWNLOAD_STALL_TIMEOUT_DEFAULT;
        d->cb = *callbacks;
        d->userdata = userdata;
        *ret = TAKE_PTR(d);
        return 0;
}

static void download_drop_request(download *d) {
        if (d->stall_timer)
                (void) sd_event_source_set_enabled(d->stall_timer, SD_EVENT_OFF);
        if (d->req) {
                (void) h2_client_request_cancel(d->req);
                d->req = h2_client_request_unref(d->req);
        }
}

download *download_free(download *d) {
        if (!d)
                return NULL;
        download_drop_request(d);
        d->client = h2_client_unref(d->client);
        d->timer = sd_event_source_disable_unref(d->timer);
        d->stall_timer = sd_event_source_disable_unref(d->stall_timer);
        d->fd = safe_close(d->fd);
        backoff_free(d->backoff);
        if (d->ssl)
                SSL_CTX_free(d->ssl);
        sd_event_unref(d->event);
        free(d->host);
        free(d->url_path);
        free(d->file);
        free(d->ca_file);
        free(d->etag);
        free(d->fatal_reason);
        free(d->done_reason);
        free(d);
        return NULL;
}

int download_set_etag(download *d, const char *etag) {
        char *e = NULL;

        if (!d)
                return -EINVAL;
        if (etag) {
                e = strdup(etag);
                if (!e)
                        return -ENOMEM;
        }
        free(d->etag);
        d->etag = e;
        return 0;
}

const char *download_get_etag(const download *d) {
        return d ? d->etag : NULL;
}

bool download_is_running(const download *d) {
        return d && d->running;
}

uint64_t download_get_bytes(const download *d) {
        return d ? d->have : 0;
}

uint64_t download_get_total(const download *d) {
        return d ? d->total : 0;
}

unsigned download_get_attempts(const download *d) {
        return d ? d->attempts : 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);
static int on_stall(sd_event_source *s, uint64_t usec, void *userdata);

/* A connection that stays up but sends nothing would hold the download
 * forever: what counts is progress, not the whole transfer's time. */
static void download_arm_stall(download *d) {
        int r = event_reset_time_relative(d->event, &d->stall_timer, d->stall_timeout, on_stall, d,
                                          "download-stall");
        if (r < 0)
                log_debug_errno(r, "download: failed to arm the stall timer: %m");
}

static void download_schedule(download *d, usec_t delay) {
        int r = event_reset_time_relative(d->event, &d->timer, delay, on_timer, d, "download");
        if (r < 0)
                log_debug_errno(r, "download: failed to arm timer: %m");
}

/* on_done is delivered from a timer, never from inside an h2 callback, so
 * the caller may free the download (and with it the client) there. */
static void download_finish(download *d, int error, const char *reason) {
        download_drop_request(d);
        if (error == 0 && d->fd >= 0 && fsync(d->fd) < 0) {
                error = negative_errno();
                reason = "fsync failed";
        }
        d->fd = safe_close(d->fd);
        if (error == -ENOSPC || error == -EDQUOT)
                (void) unlink(d->file);
        d->running = false;
        d->done_pending = true;
        d->done_error = error;
        free(d->done_reason);
        d->done_reason = reason ? strdup(reason) : NULL;
        download_schedule(d, 0);
}

static void set_fatal(download *d, int error, const char *fmt, ...) _printf_(3, 4);
static void set_fatal(download *d, int error, const char *fmt, ...) {
        va_list ap;

        d->fatal = error;
        free(d->fatal_reason);
        va_start(ap, fmt);
        if (vasprintf(&d->fatal_reason, fmt, ap) < 0)
                d->fatal_reason = NULL;
        va_end(ap);
}

static void download_retry(download *d, int error, const char *reason) {
        usec_t delay;
        int r;

        r = backoff_next_delay(d->backoff, &delay);
        if (r < 0) {
                _cleanup_free_ char *why = NULL;

                if (asprintf(&why, "connection lost after %u attempts: %s", d->attempts, strna(reason)) < 0)
                        why = NULL;
                download_finish(d, -ECONNABORTED, why ?: "connection lost");
                return;
        }
        log_debug("download %s: attempt %u failed (%s), retrying in %" PRIu64 " ms", d->url_path, d->attempts,
                  strna(reason), delay / USEC_PER_MSEC);
        download_schedule(d, delay);
}

static int truncate_partial(download *d) {
        if (ftruncate(d->fd, 0) < 0)
                return negative_errno();
        d->have = 0;
        return 0;
}

static int on_response(H2ClientRequest *req, int status, void *userdata) {
        download *d = userdata;
        const char *etag = h2_client_request_get_header(req, "etag");
        const char *cr = h2_client_request_get_header(req, "content-range");
        const char *cl = h2_client_request_get_header(req, "content-length");
        uint64_t first, size;
        int r;

        d->status = status;
        if ((status == 200 || status == 206) && !streq_ptr(etag, d->etag)) {
                (void) download_set_etag(d, etag);
                if (d->cb.on_etag)
                        d->cb.on_etag(d, etag, d->userdata);
        }

        switch (status) {
        case 206:
                if (package_content_range_parse(cr, &first, &size) < 0 || first != d->have) {
                        set_fatal(d, -EPROTO, "server sent a range that does not continue the partial download");
                        return -EPROTO;
                }
                d->total = size;
                return 0;
        case 200:
                if (d->have > 0) {
                        log_debug("download %s: server ignored Range, starting over", d->url_path);
                        r = truncate_partial(d);
                        if (r < 0) {
                                set_fatal(d, r, "cannot truncate the partial download");
                                return r;
                        }
                }
                d->total = cl ? strtoull(cl, NULL, 10) : 0;
                return 0;
        case 416:
                if (package_content_range_parse(cr, &first, &size) >= 0 && d->have > 0 && size == d->have) {
                        d->total = size;
                        d->complete = true;
                        return 0;
                }
                if (d->restarted) {
                        set_fatal(d, -EPROTO, "server refuses every range (416)");
                        return -EPROTO;
                }
                d->restarted = true;
                r = truncate_partial(d);
                if (r < 0) {
                        set_fatal(d, r, "cannot truncate the partial download");
                        return r;
                }
                d->again = true;
                return 0;
        case 404:
        case 410:
                set_fatal(d, -ENOENT, "package not found (%d)", status);
                return -ENOENT;
        default:
                if (status >= 500)
                        return 0; /* retried in on_complete */
                set_fatal(d, -EPROTO, "server answered %d", status);
                return -EPROTO;
        }
}

static int on_data(H2ClientRequest *req, const uint8_t *data, size_t size, void *userdata) {
        download *d = userdata;

        if (d->status != 200 && d->status != 206)
                return 0;
        /* A server that sends more than it announced is not to be trusted
         * with the disk. */
        if (d->total > 0 && size > d->total - MIN(d->have, d->total)) {
                set_fatal(d, -EPROTO, "server sent more than the announced size");
                return -EPROTO;
        }
        while (size > 0) {
                ssize_t n = write(d->fd, data, size);

                if (n < 0) {
                        int r = negative_errno();

                        if (r == -EINTR)
                                continue;
                        set_fatal(d, r, "cannot write the package: %s", strerror(-r));
                        return r;
                }
                data += n;
                size -= (size_t) n;
                d->have += (uint64_t) n;
        }
        download_arm_stall(d);
        if (d->cb.on_progress)
                d->cb.on_progress(d, d->have, d->total, d->userdata);
        return 0;
}

static void on_complete(H2ClientRequest *req, int error, void *userdata) {
        download *d = userdata;
        char buf[64];

        d->req = h2_client_request_unref(d->req);
        if (d->fatal) {
                download_finish(d, d->fatal, d->fatal_reason);
                return;
        }
        if (d->complete) {
                download_finish(d, 0, NULL);
                return;
        }
        if (d->again) {
                download_schedule(d, 0);
                return;
        }
        if (error == 0 && (d->status == 200 || d->status == 206)) {
                if (d->total > 0 && d->have != d->total) {
                        download_retry(d, -EPIPE, "response ended early");
                        return;
                }
                download_finish(d, 0, NULL);
                return;
        }
        if (error == 0)
                snprintf(buf, sizeof(buf), "server answered %d", d->status);
        else
                snprintf(buf, sizeof(buf), "%s", strerror(-error));
        download_retry(d, error ?: -EIO, buf);
}

static int download_attempt(download *d) {
        static const H2ClientRequestCallbacks cbs = {
                .on_response = on_response,
                .on_data = on_data,
                .on_complete = on_complete,
        };
        H2Header headers[2];
        size_t n = 0;
        char range[48];
        struct stat st;
        int r;

        d->status = 0;
        d->complete = d->again = false;
        d->fatal = 0;
        free(d->fatal_reason);
        d->fatal_reason = NULL;
        d->attempts++;

        if (d->fd < 0) {
                d->fd = open(d->file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (d->fd < 0)
                        return negative_errno();
        }
        if (fstat(d->fd, &st) < 0)
                return negative_errno();
        d->have = (uint64_t) st.st_size;

        if (d->client && !h2_client_is_usable(d->client))
                d->client = h2_client_unref(d->client);
        if (!d->client) {
                H2ClientConfig config;

                if (d->tls && !d->ssl) {
                        r = tls_client_ctx_new(d->ca_file ?: DOWNLOAD_CA_FILE_DEFAULT, &d->ssl);
                        if (r < 0) {
                                set_fatal(d, -EKEYREJECTED, "cannot load the CA file: %s", strerror(-r));
                                return -EKEYREJECTED;
                        }
                }
                h2_client_config_init(&config);
                config.request_timeout_usec = d->request_timeout;
                r = h2_client_new(d->event, d->host, d->port, d->tls ? d->ssl : NULL, NULL, &config,
                                  &(H2ClientCallbacks) {}, d, &d->client);
                if (r < 0)
                        return r;
        }

        if (d->have > 0) {
                snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", d->have);
                headers[n++] = (H2Header) { "range", range };
                if (d->etag)
                        headers[n++] = (H2Header) { "if-range", d->etag };
        }
        r = h2_client_request(d->client, "GET", d->url_path, headers, n, NULL, 0, 0, &cbs, d, &d->req);
        if (r >= 0)
                download_arm_stall(d);
        return r;
}

static void download_attempt_or_retry(download *d) {
        int r = download_attempt(d);

        if (r == -ENOMEM)
                download_finish(d, r, "out of memory");
        else if (r == -EKEYREJECTED)
                download_finish(d, r, d->fatal_reason);
        else if (r == -ENOSPC || r == -EDQUOT || r == -EACCES || r == -EROFS || r == -ELOOP || r == -EISDIR)
                download_finish(d, r, "cannot open the partial download");
        else if (r < 0)
                download_retry(d, r, strerror(-r));
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        download *d = userdata;

        if (d->done_pending) {
                _cleanup_free_ char *reason = TAKE_PTR(d->done_reason);

                d->done_pending = false;
                /* May free d. */
                d->cb.on_done(d, d->done_error, reason, d->userdata);
                return 0;
        }
        if (d->running && !d->req)
                download_attempt_or_retry(d);
        return 0;
}

static int on_stall(sd_event_source *s, uint64_t usec, void *userdata) {
        download *d = userdata;

        if (!d->running || !d->req)
                return 0;
        /* Cancelling completes nothing: the retry is ours to schedule. */
        download_drop_request(d);
        d->client = h2_client_unref(d->client);
        download_retry(d, -ETIMEDOUT, "no data for too long");
        return 0;
}

int download_start(download *d) {
        if (!d)
                return -EINVAL;
        if (d->running)
                return -EALREADY;
        d->running = true;
        d->done_pending = false;
        d->attempts = 0;
        d->restarted = false;
        backoff_reset(d->backoff);
        download_schedule(d, 0);
        return 0;
}

void download_stop(download *d) {
        if (!d)
                return;
        download_drop_request(d);
        /* A paused link rarely comes back on the same connection. */
        d->client = h2_client_unref(d->client);
        if (d->timer)
                (void) sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
        d->done_pending = false;
        if (d->fd >= 0)
                (void) fsync(d->fd);
        d->fd = safe_close(d->fd);
        d->running = false;
}
