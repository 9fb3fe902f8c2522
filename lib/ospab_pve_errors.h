/* ospab core: what a customer is told when Proxmox refuses or fails. Proxmox's own messages
 * name storages, paths, nodes and internals (`unable to create CT 100 - storage 'local-lvm'
 * is not online`): they go to the log and to admins; customers get the panel's words. One
 * table maps the messages the panel knows; anything else is the generic failure. */
#ifndef OSPAB_PVE_ERRORS_H
#define OSPAB_PVE_ERRORS_H

#include <apr_pools.h>

typedef struct {
    const char *contains;       /* a part of Proxmox's message */
    int status;                 /* the HTTP status for the customer */
    const char *text;           /* their message */
    int expected;               /* a normal refusal, not worth a log line */
    int with_lock;              /* the lock's name follows the text: " (backup)" */
} ospab_pve_error_t;

/* The table's entry for Proxmox's message (HTTP status line or task exit status), or NULL
 * when the panel does not know it. */
const ospab_pve_error_t *ospab_pve_error_find(const char *message);

/* The customer's text for message: the entry's, or the generic failure. NULL for NULL. */
const char *ospab_pve_error_text(apr_pool_t *p, const char *message);

#define OSPAB_PVE_ERROR_GENERIC "the operation failed on the hypervisor; your provider has " \
                                "the details"

#endif
