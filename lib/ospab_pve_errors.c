/* ospab core: Proxmox's messages in the customer's words (see ospab_pve_errors.h). The
 * patterns come from pve-container and qemu-server (docs/proxmox.md's table); the first
 * match wins, so the more specific ones come first. */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "ospab_pve_errors.h"

static const ospab_pve_error_t table[] = {
    { "already running", 409, "server is already running", 1, 0 },
    /* qemu-server's guest agent calls (agent/set-user-password, agent/ping) */
    { "guest agent is not running", 409, "the QEMU guest agent in the server does not "
                                         "answer: start qemu-guest-agent in it, or ask "
                                         "support", 1, 0 },
    { "No QEMU guest agent configured", 409, "the server has no QEMU guest agent "
                                             "configured: ask support", 1, 0 },
    { "not running", 409, "server is not running", 1, 0 },
    { "is locked", 409, "server is busy with another operation", 1, 1 },
    { "can't lock file", 409, "server is busy with another operation, try again", 1, 0 },
    { "unable to shrink", 400, "disk can only grow", 1, 0 },
    { "already at specified size", 400, "disk can only grow", 1, 0 },
    { "already used", 409, "a snapshot with this name already exists", 1, 0 },
    { "snapshot '", 404, "no such snapshot", 1, 0 },          /* "snapshot 'x' does not exist" */
    { "protection mode enabled", 409, "the server is protected against deletion: ask "
                                      "your provider", 0, 0 },
    { "already exists", 409, "the server already exists on the hypervisor", 0, 0 },
    { "does not exist", 502, "the server is missing on the hypervisor", 0, 0 },
    { NULL, 0, NULL, 0, 0 }
};

const ospab_pve_error_t *ospab_pve_error_find(const char *message)
{
    const ospab_pve_error_t *e;

    if (!message) {
        return NULL;
    }
    for (e = table; e->contains; ++e) {
        if (strstr(message, e->contains)
            && (strcmp(e->contains, "snapshot '") || strstr(message, "does not exist"))) {
            return e;
        }
    }
    return NULL;
}

/* " (backup)" from "CT is locked (backup)": the lock's name when it is one plain word. */
static const char *lock_name(apr_pool_t *p, const char *message)
{
    const char *open = strstr(message, "locked ("), *s, *close;

    if (!open) {
        return "";
    }
    s = open + 8;
    close = strchr(s, ')');
    if (!close || close == s || close - s > 32) {
        return "";
    }
    for (open = s; open < close; ++open) {
        if (!apr_islower(*open) && *open != '-' && *open != '_') {
            return "";
        }
    }
    return apr_psprintf(p, " (%.*s)", (int)(close - s), s);
}

const char *ospab_pve_error_text(apr_pool_t *p, const char *message)
{
    const ospab_pve_error_t *e;

    if (!message) {
        return NULL;
    }
    e = ospab_pve_error_find(message);
    if (!e) {
        return OSPAB_PVE_ERROR_GENERIC;
    }
    return e->with_lock ? apr_pstrcat(p, e->text, lock_name(p, message), NULL) : e->text;
}
