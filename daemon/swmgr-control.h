/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The software manager's control socket commands (docs/software-management.md
 * has their JSON). The caller's principal is "local:uid=<uid>" from
 * SO_PEERCRED, so every command goes through the component ACLs like a
 * remote order.
 *
 *   components                      {"components": [...]}
 *   install {"descriptor", "acl"?}  {"component": {...}}
 *   accept|reject|activate|deactivate|uninstall {"name"}
 *                                   {"component": {...}} (uninstall:
 *                                   {"component": {"name", "removed": true}}) */

#include "control.h"
#include "swmgr.h"

int swmgr_control_register(control_server *s, swmgr *m);
