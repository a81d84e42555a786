/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Resumable package download over HTTP/2 (lib/h2-client) into a file.
 *
 * The file at path is the partial download: whatever it holds is kept and
 * continued with "Range: bytes=<size>-" (plus If-Range with the entity tag
 * the server gave before, so a changed package is never spliced onto the
 * old bytes). Responses:
 *   206  appended, after checking Content-Range starts where we are
 *   200  the server ignored Range (or If-Range failed): truncate, start over
 *   416  with Content-Range "bytes star/<size>" equal to what we have:
 *        complete; else the partial is longer than the package: truncate
 *        and start over (once)
 *   404, 410, other 4xx: fail at once (-ENOENT, -EPROTO), never retried
 *   5xx, connection lost, no byte for stall_timeout: retried with jittered backoff
 *        (lib/backoff); -ECONNABORTED once the attempts are used up
 * Writing: -ENOSPC/-EDQUOT remove the partial (nothing half-written is
 * left to fill the disk again) and fail at once.
 *
 * download_stop() cancels the request and keeps the partial; a later
 * download_start() resumes it. Exactly one on_done() follows each
 * download_start() unless download_stop() or download_free() comes first. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "time-util.h"

typedef struct download download;

typedef struct download_options {
        usec_t retry_initial;     /* 0: 1s */
        usec_t retry_max;         /* 0: 60s */
        unsigned retry_attempts;  /* retries after the first attempt; 0: 5 */
        usec_t request_timeout;   /* 0: none (a slow link is not an error) */
        usec_t stall_timeout;     /* no byte for this long: retry; 0: 60s */
        const char *ca_file;      /* for https:// URLs; NULL: the system bundle */
} download_options;

typedef struct download_callbacks {
        /* After each chunk written; total is 0 while unknown. */
        void (*on_progress)(download *d, uint64_t have, uint64_t total, void *userdata);
        /* A response started; etag may be NULL. Persist it for If-Range. */
        void (*on_etag)(download *d, const char *etag, void *userdata);
        /* 0: the file holds the complete package (fsync()ed). Else negative
         * errno and a reason for people. */
        void (*on_done)(download *d, int error, const char *reason, void *userdata);
} download_callbacks;

/* package_url_parse() (lib/package.h): http:// is cleartext h2, for
 * loopback and tests. */
int download_parse_url(const char *url, bool *ret_tls, char **ret_host, uint16_t *ret_port,
                       char **ret_path);

int download_new(sd_event *e, const char *url, const char *path, const download_options *options,
                 const download_callbacks *callbacks, void *userdata, download **ret);
download *download_free(download *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(download *, download_free);
#define _cleanup_download_ _cleanup_(download_freep)

/* The entity tag to send as If-Range on the next request (from a previous
 * run of the agent). */
int download_set_etag(download *d, const char *etag);
const char *download_get_etag(const download *d);

/* Starts or resumes from the size of the file. -EALREADY when running. */
int download_start(download *d);
/* Cancels the request and any pending retry; keeps the partial. */
void download_stop(download *d);
bool download_is_running(const download *d);
uint64_t download_get_bytes(const download *d);
uint64_t download_get_total(const download *d);
/* Attempts made since download_start(). */
unsigned download_get_attempts(const download *d);
