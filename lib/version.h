/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One version for every program of the project; the Debian changelog
 * carries the same number. */
#define RETHINK_VERSION "0.1.0"
