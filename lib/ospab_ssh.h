/* ospab core: commands on a Proxmox node over SSH (libssh2), for what the Proxmox API cannot
 * do — setting the root password of an existing container (`pct exec <vmid> -- chpasswd`).
 * Key authentication only; the node's host key must match the known_hosts file (never
 * skipped); secrets travel on the command's standard input, never on its command line, and
 * are never logged. */
#ifndef OSPAB_SSH_H
#define OSPAB_SSH_H

#include <apr_pools.h>

typedef struct {
    const char *host;           /* the node's address */
    int port;                   /* 22 */
    const char *user;           /* "root" */
    const char *private_key;    /* path to the private key (PEM/OpenSSH format) */
    const char *private_key_pem;/* or the key itself, read at start-up by a process that
                                 * may read the file (wins over the path when set) */
    const char *public_key;     /* path, or NULL when libssh2 can derive it */
    const char *known_hosts;    /* OpenSSH known_hosts file holding the node's host key */
    const char *host_key;       /* or the node's key itself, "TYPE BASE64" as in known_hosts
                                 * (a registered node's ssh_host_key): checked instead of
                                 * the file when set */
    long timeout_ms;            /* connect + whole exchange */
} ospab_ssh_conf_t;

/* Whether key is a host key as known_hosts writes it, "TYPE BASE64" (a type this client can
 * check: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa). NULL, or why not. */
const char *ospab_ssh_host_key_problem(const char *key);

/* c->host and c->port from "host", "host:port" or "[v6]:port". NULL, or why not. */
const char *ospab_ssh_set_host(apr_pool_t *p, ospab_ssh_conf_t *c, const char *hostport);

/* Runs command on the node, writes stdin_data (may be NULL) to its standard input and
 * closes it, reads up to 64 KiB of its output. *exit_status is the command's exit code.
 * On failure (connection, host key, auth, timeout) returns non-APR_SUCCESS with *err set
 * to a message fit for a log (no secrets). Thread-safe (one session per call). */
apr_status_t ospab_ssh_exec(apr_pool_t *p, const ospab_ssh_conf_t *conf, const char *command,
                            const char *stdin_data, int *exit_status, const char **output,
                            const char **err);

/* `pct exec <vmid> -- chpasswd` with "root:<password>\n" on stdin. */
apr_status_t ospab_ssh_set_root_password(apr_pool_t *p, const ospab_ssh_conf_t *conf,
                                         long vmid, const char *password, const char **err);

#endif
