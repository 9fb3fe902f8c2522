/* ospab core: server management on Proxmox VE (ospab_server.h): the helpers the server
 * files share (ospab_server_int.h), power, create, delete, the root password, the console
 * and the task list. The task machine is in ospab_task.c, resize in ospab_resize.c,
 * snapshots in ospab_snapshot.c, live status in ospab_server_stats.c, the adoption of
 * synced records in ospab_adopt.c. */
#include <string.h>
#include <stdlib.h>
#include <ctype.h>

#include <apr_strings.h>
#include <apr_general.h>
#include <apr_escape.h>

#include "ospab_server_int.h"
#include "ospab_json.h"
#include "ospab_jsonw.h"
#include "ospab_util.h"
#include "ospab_events.h"
#include "ospab_mail.h"
#include "ospab_resource.h"
#include "ospab_pve_errors.h"
#include "ospab_catalog.h"
#include "ospab_ippool.h"
#include "ospab_placement.h"
#include "ospab_sshkeys.h"
#include "ospab_console.h"

/* ---- small helpers ---------------------------------------------------------------------- */

void ospab_srv_ok_body(apr_pool_t *p, ospab_result_t *res, int status, json_t *body)
{
    res->status = status;
    res->body = ospab_json_own(p, body);
}

/* {"status":"success", "action"?:..., "taskId"?:...} */
json_t *ospab_srv_success(const char *action, const char *upid)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_string("success"));
    if (action) {
        json_object_set_new(o, "action", json_string(action));
    }
    if (upid) {
        json_object_set_new(o, "taskId", json_string(upid));
    }
    return o;
}

/* Maps a failed Proxmox call to the answer the customer gets: the panel's words
 * (lib/ospab_pve_errors.c), never Proxmox's own, which go to the log. */
void ospab_srv_pve_failed(apr_pool_t *p, const ospab_pve_result_t *pr, const char *what,
                          ospab_result_t *res)
{
    const char *m = pr->message ? pr->message : "";
    const ospab_pve_error_t *e;

    res->log = apr_psprintf(p, "Proxmox %s: %s (HTTP %d)", what, m, pr->http_status);
    switch (pr->outcome) {
    case OSPAB_PVE_TIMEOUT:
        ospab_result_error(p, res, 504, "Proxmox did not answer in time", NULL);
        return;
    case OSPAB_PVE_UNREACHABLE:
        ospab_result_error(p, res, 502, "Proxmox is unreachable", NULL);
        return;
    case OSPAB_PVE_BAD_RESPONSE:
        ospab_result_error(p, res, 502, "Proxmox gave an answer the panel cannot read", NULL);
        return;
    default:
        break;
    }
    if ((e = ospab_pve_error_find(m)) != NULL) {
        if (e->expected) {
            res->log = NULL;
        }
        ospab_result_error(p, res, e->status, ospab_pve_error_text(p, m), NULL);
    }
    else if (pr->http_status == 400) {
        ospab_result_error(p, res, 400, "the hypervisor refused these settings; your provider "
                           "has the details", NULL);
    }
    else if (pr->http_status == 401 || pr->http_status == 403) {
        ospab_result_error(p, res, 502, "Proxmox refused the panel's credentials", NULL);
    }
    else if (pr->http_status >= 595) {
        ospab_result_error(p, res, 502, "the Proxmox node is unreachable", NULL);
    }
    else {
        ospab_result_error(p, res, 502, OSPAB_PVE_ERROR_GENERIC, NULL);
    }
}

/* Every Proxmox call of a request shares one budget: the configured total timeout counted
 * from the request's start, so no worker waits longer however many calls it makes. */
apr_status_t ospab_srv_pve_call(const ospab_server_conf_t *c, apr_pool_t *p,
                                const ospab_actor_t *a, const char *method, const char *path,
                                const ospab_pve_param_t *params, ospab_pve_result_t *res)
{
    if (a->effects) {
        ++*a->effects;
    }
    return ospab_pve_call_until(c->pve, p, ospab_pve_deadline(c->pve, a->now), method, path,
                                params, res);
}

/* "/nodes/<node>/<lxc|qemu>/<vmid>/<tail...>" */
const char *ospab_srv_guest_path(apr_pool_t *p, const ospab_vps_t *v, const char *a, const char *b,
                                 const char *c)
{
    return ospab_pve_path(p, "nodes", v->node, ospab_vps_kind(v), v->vmid, a, b,
                          c, NULL);
}

const ospab_server_conf_t *ospab_srv_for(ospab_db_t *db, apr_pool_t *p,
                                         const ospab_server_conf_t *c, const char *node,
                                         ospab_result_t *res)
{
    ospab_server_conf_t *cc;
    ospab_pve_t *pve = NULL;
    const char *url = NULL;

    if (c->clusters) {
        pve = ospab_clusters_pve(c->clusters, db, p, node, &url);
    }
    if (!url) {                         /* no registered cluster's: the configured one */
        if (!c->pve && res) {
            ospab_result_error(p, res, 503, "server management is not configured "
                               "(OspabProxmoxURL, or a cluster for this node)", NULL);
        }
        return c->pve ? c : NULL;
    }
    if (!pve) {
        if (res) {
            res->log = apr_psprintf(p, "the cluster of node %s cannot be used: its token "
                                    "does not open (no OspabSecretKey, or another key)", node);
            ospab_result_error(p, res, 503, "server management is unavailable for this "
                               "server's node, please contact support", NULL);
        }
        return NULL;
    }
    cc = apr_pmemdup(p, c, sizeof(*c));
    cc->pve = pve;
    cc->url = url;
    return cc;
}

int ospab_srv_on_proxmox(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t **c,
                         const ospab_vps_t *v, ospab_result_t *res)
{
    const ospab_server_conf_t *cc;

    if (strcmp(v->hypervisor, "proxmox")) {
        ospab_result_error(p, res, 501, apr_psprintf(p, "this server runs on %s: the panel "
                           "manages Proxmox servers only, ask support", v->hypervisor),
                           NULL);
        return 1;
    }
    if (!(*c)->pve && !(*c)->clusters) {
        ospab_result_error(p, res, 503, "server management is not configured "
                           "(OspabProxmoxURL)", NULL);
        return 1;
    }
    if (!v->node || !v->vmid) {
        ospab_result_error(p, res, 409, ospab_srv_unlinked_text(p, v), NULL);
        return 1;
    }
    if (!(cc = ospab_srv_for(db, p, *c, v->node, res))) {
        return 1;
    }
    *c = cc;
    return 0;
}

/* ---- power ------------------------------------------------------------------------------ */

void ospab_server_power(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                        const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                        const char *action, ospab_result_t *res)
{
    /* restart is a hard stop first (then the start, see follow_up) */
    const char *pve_action = !strcmp(action, "restart") ? "stop" : action;
    const char *task_id, *upid;
    ospab_pve_result_t pr;
    const ospab_vps_t *v;
    apr_status_t rv;
    int only_start = 0;

    memset(res, 0, sizeof(*res));
    if (ospab_task_prepare(db, p, &c, who, a, id, action, &v, &task_id, res)) {
        return;
    }

    rv = ospab_srv_pve_call(c, p, a, "POST",
                            ospab_srv_guest_path(p, v, "status", pve_action, NULL), NULL, &pr);
    if (rv != APR_SUCCESS && !strcmp(action, "restart") && pr.message
        && strstr(pr.message, "not running")) {
        /* restarting a stopped server: just start it */
        only_start = 1;
        rv = ospab_srv_pve_call(c, p, a, "POST",
                                ospab_srv_guest_path(p, v, "status", "start", NULL), NULL, &pr);
    }
    if (ospab_task_started(db, p, a, task_id, rv, &pr, action, &upid, res)) {
        return;
    }
    if (only_start) {
        /* the task row is the start half already */
        ospab_task_continue(db, p, a, task_id, upid, "restart");
    }
    ospab_srv_ok_body(p, res, 200, ospab_srv_success(action, upid));
}

/* ---- create ----------------------------------------------------------------------------- */

const char *ospab_server_new_password(apr_pool_t *p)
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char raw[20];
    char *pw = apr_palloc(p, sizeof(raw) + 1);
    apr_size_t i, n = sizeof(alphabet) - 1;

    apr_generate_random_bytes(raw, sizeof(raw));
    for (i = 0; i < sizeof(raw); ++i) {
        /* 256 % 56 != 0: redraw the bytes that would bias the choice */
        while (raw[i] >= 256 - 256 % n) {
            apr_generate_random_bytes(&raw[i], 1);
        }
        pw[i] = alphabet[raw[i] % n];
    }
    pw[sizeof(raw)] = '\0';
    memset(raw, 0, sizeof(raw));
    return pw;
}

int ospab_srv_positive_int(json_t *v, apr_int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        return 0;
    }
    *out = json_integer_value(v);
    return 1;
}

/* A customer's self-service creates stop at OspabServerQuota servers: checked before
 * Proxmox is asked, and again inside the create's transaction (db->trans) with the user's
 * row locked first, so parallel creates cannot all pass the count. 0: go on; 1: res is
 * set (and the transaction rolled back). */
static int over_quota(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                      const ospab_principal_t *who, ospab_result_t *res)
{
    const char *uid = who->user_id, *count = NULL;

    if (who->admin || c->server_quota <= 0) {
        return 0;
    }
    if ((db->trans && ospab_db_exec(db, p, "ospab_user_lock", 1, &uid, NULL) != APR_SUCCESS)
        || ospab_db_select_value(db, p, "ospab_vps_count_user", 1, &uid, &count)
           != APR_SUCCESS || !count) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (apr_atoi64(count) >= c->server_quota) {
        if (db->trans) {
            ospab_db_end(db, 0);
        }
        ospab_result_error(p, res, 403, apr_psprintf(p, "you have %s servers, the most you "
                           "can order here (%d): delete one or ask your provider", count,
                           c->server_quota), NULL);
        return 1;
    }
    return 0;
}

/* vmids a create tries before it gives up (many customers ordering at once all start from
 * the same nextid) */
#define CREATE_ATTEMPTS 32

/* Where a new server goes: a registered node (id set: placement, lib/ospab_placement.h)
 * or the configured one. */
typedef struct {
    const char *id, *name, *storage, *bridge;
    const ospab_server_conf_t *c;       /* its cluster's settings (ospab_srv_for) */
    const ospab_kvm_template_t *tmpl;   /* a VM's template VM in that cluster */
} target_t;

/* What a create needs on its way (ospab_server_create -> create_on). */
typedef struct {
    const ospab_server_conf_t *c;
    const ospab_principal_t *who;
    const ospab_actor_t *a;
    const ospab_os_t *os;
    const ospab_tariff_t *tariff;
    const char *os_s, *tariff_s, *password;
    int qemu;                   /* a KVM guest, cloned from the OS entry's template VM */
    const char *ssh_keys;       /* the public keys chosen, one per line, or NULL */
    apr_array_header_t *tmpls;  /* ospab_kvm_template_t *: the template found per cluster */
    ospab_need_t need;
    apr_int64_t vmid;           /* the next one to try */
    int attempts;               /* vmids tried so far */
} create_t;

/* A statement of the record's transaction failed (nothing outside the database done yet).
 * A write conflict (Galera's certification aborting it, or a deadlock): rolled back, and 1
 * after a short pause to run the same attempt again, bounded by ospab_db_conflict_again;
 * else 0 with res the 503. */
static int record_tx_again(ospab_db_t *db, apr_pool_t *p, create_t *k, int *conflicts,
                           ospab_result_t *res)
{
    if (db->conflict) {
        if (db->trans) {
            ospab_db_end(db, 0);
        }
        /* every create on the node locks its row: more of them lose, and may try again */
        if (ospab_db_conflict_again_upto(db, conflicts, OSPAB_DB_CONFLICT_TRIES_HOT)) {
            --k->attempts;          /* the same vmid again: the loop's step undone */
            --k->vmid;
            return 1;
        }
    }
    ospab_result_db_failed(db, p, res);
    return 0;
}

/* A container's create (vzcreate) on t: *pr has the UPID. */
static apr_status_t lxc_create(apr_pool_t *p, const create_t *k, const target_t *t,
                               const ospab_vps_t *v, const ospab_ip_lease_t *lease,
                               ospab_pve_result_t *pr)
{
    ospab_pve_param_t params[13];
    int i = 0;

    params[i++] = (ospab_pve_param_t){ "vmid", v->vmid };
    params[i++] = (ospab_pve_param_t){ "ostemplate", k->os->template_ };
    params[i++] = (ospab_pve_param_t){ "hostname", v->name };
    params[i++] = (ospab_pve_param_t){ "cores", k->tariff->cores };
    params[i++] = (ospab_pve_param_t){ "memory", k->tariff->memory };
    params[i++] = (ospab_pve_param_t){ "rootfs", apr_psprintf(p, "%s:%s", t->storage,
                                                              k->tariff->disk) };
    params[i++] = (ospab_pve_param_t){ "net0", ospab_ippool_net0(p, t->bridge, lease) };
    if (lease->dns) {
        params[i++] = (ospab_pve_param_t){ "nameserver", lease->dns };
    }
    params[i++] = (ospab_pve_param_t){ "password", k->password };
    if (k->ssh_keys) {
        params[i++] = (ospab_pve_param_t){ "ssh-public-keys", k->ssh_keys };
    }
    params[i++] = (ospab_pve_param_t){ "unprivileged", "1" };
    /* no start=1: Proxmox would start it in a task of its own whose UPID we never see;
     * the follow-up starts it and follows that task (create:start) */
    params[i] = (ospab_pve_param_t){ NULL, NULL };
    return ospab_srv_pve_call(t->c, p, k->a, "POST",
                              ospab_pve_path(p, "nodes", t->name, "lxc", NULL), params, pr);
}

/* A VM's create on t: what its later steps need goes into the task row (the password as
 * its SHA-512 crypt hash, which cloud-init takes as it is), then the clone of the
 * template; *pr has the qmclone UPID. */
static apr_status_t kvm_clone(ospab_db_t *db, apr_pool_t *p, const create_t *k,
                              const target_t *t, const ospab_vps_t *v, const char *task_id,
                              const ospab_ip_lease_t *lease, ospab_pve_result_t *pr)
{
    const char *hash;
    json_t *params;
    apr_status_t rv;

    memset(pr, 0, sizeof(*pr));
    ospab_kvm_sizes_t sizes = { k->tariff->cores, k->tariff->memory, k->tariff->disk,
                                t->tmpl->disk };

    if (ospab_password_crypt(p, k->password, "$6$", &hash) != APR_SUCCESS
        || !(params = ospab_kvm_create_params(&sizes, apr_pstrcat(p, "virtio,bridge=",
                                                                   t->bridge, NULL),
                                              ospab_ippool_ipconfig(p, lease), lease->dns,
                                              hash, k->ssh_keys))) {
        pr->message = "the password could not be hashed";
        return APR_EGENERAL;
    }
    rv = ospab_task_set_params(db, p, task_id, params);
    json_decref(params);
    if (rv != APR_SUCCESS) {
        pr->message = "the database failed";
        return APR_EGENERAL;
    }
    return ospab_kvm_clone(p, t->c, k->a, t->tmpl, t->name, t->storage, v->vmid, v->name, pr);
}

/* The record (with its addresses, on a locked node within its limits) and the Proxmox
 * create, on target t. 0: res is the answer; 1: t cannot take it any more (its limits, with
 * what committed meanwhile): the next one; 2: no vmid could be reserved. */
static int create_on(ospab_db_t *db, apr_pool_t *p, create_t *k, const target_t *t,
                     ospab_result_t *res)
{
    const ospab_server_conf_t *c = k->c;
    const ospab_actor_t *a = k->a;
    const char *args[17], *now, *vps_id, *task_id, *upid;
    const ospab_vps_t *v;
    ospab_pve_result_t pr;
    ospab_ippool_set_t pools;
    ospab_ip_lease_t lease;
    int i, taken, conflicts = 0;

    /* the IP pools that serve the node's bridge (taken from in the record's transaction) */
    if (ospab_ippool_pools(db, p, t->name, t->bridge, &pools) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 0;
    }
    for (; k->attempts < CREATE_ATTEMPTS; ++k->attempts, ++k->vmid) {
        apr_status_t rv;

        now = ospab_time_db(p, a->now);
        for (i = 0; i < 17; ++i) {
            args[i] = NULL;
        }
        args[OSPAB_VPS_NAME - 1] = apr_psprintf(p, "%s%" APR_INT64_T_FMT,
                                                k->qemu ? "vm" : "ct", k->vmid);
        args[OSPAB_VPS_STATUS - 1] = "creating";
        args[OSPAB_VPS_CPU - 1] = k->tariff->cores;
        args[OSPAB_VPS_RAM - 1] = k->tariff->memory;
        args[OSPAB_VPS_DISK - 1] = k->tariff->disk;
        args[OSPAB_VPS_OS - 1] = k->os->name;
        args[OSPAB_VPS_USER_ID - 1] = k->who->user_id;
        args[OSPAB_VPS_HYPERVISOR - 1] = "proxmox";
        args[OSPAB_VPS_NODE - 1] = t->name;
        args[OSPAB_VPS_VMID - 1] = apr_psprintf(p, "%" APR_INT64_T_FMT, k->vmid);
        args[OSPAB_VPS_KIND - 1] = k->qemu ? "qemu" : "lxc";
        args[OSPAB_VPS_TARIFF_ID - 1] = k->tariff_s;
        args[OSPAB_VPS_OS_ID - 1] = k->os_s;
        args[OSPAB_VPS_CREATED_AT - 1] = args[OSPAB_VPS_UPDATED_AT - 1] = now;
        /* the node's lock, then the pools': what this transaction reads of them afterwards
         * is what the create before it committed (lib/ospab_placement.h, ospab_ippool.h) */
        if (ospab_db_begin(db, p) != APR_SUCCESS
            || (t->id && ospab_node_lock(db, p, t->id) != APR_SUCCESS)
            || ospab_ippool_lock(db, p, &pools) != APR_SUCCESS) {
            if (record_tx_again(db, p, k, &conflicts, res)) {
                continue;
            }
            return 0;
        }
        if (t->id) {
            const ospab_node_t *n;
            const char *why;

            if (ospab_node_reload(db, p, t->id, &n) != APR_SUCCESS) {
                if (record_tx_again(db, p, k, &conflicts, res)) {
                    continue;
                }
                return 0;
            }
            if (!n || (why = ospab_node_unfit(p, n, &k->need, a->now)) != NULL) {
                ospab_db_end(db, 0);
                return 1;
            }
        }
        if (over_quota(db, p, c, k->who, res)) {
            if (res->status == 503 && db->conflict) {
                memset(res, 0, sizeof(*res));
                if (record_tx_again(db, p, k, &conflicts, res)) {
                    continue;
                }
            }
            return 0;
        }
        if (ospab_db_exec(db, p, "ospab_vps_insert", 17, args, NULL) != APR_SUCCESS) {
            if (ospab_db_is_constraint(db)) {   /* vmid taken in our own table */
                const char *top = NULL;

                ospab_db_end(db, 0);
                /* many creates at once all got the same nextid: go past the ones they took
                 * rather than one step at a time, spread out so that they do not all try
                 * the same next one again */
                if (ospab_db_select_value(db, p, "ospab_vps_max_vmid", 0, NULL, &top)
                    == APR_SUCCESS && top && apr_atoi64(top) > k->vmid) {
                    unsigned char r;
                    int spread = 4 * (k->attempts + 1) < 64 ? 4 * (k->attempts + 1) : 64;

                    apr_generate_random_bytes(&r, 1);
                    k->vmid = apr_atoi64(top) + r % spread;
                }
                continue;
            }
            if (record_tx_again(db, p, k, &conflicts, res)) {
                continue;
            }
            return 0;
        }
        if (ospab_db_last_id(db, p, &vps_id) != APR_SUCCESS
            || (taken = ospab_ippool_take(db, p, a->now, &pools, vps_id, &lease)) < 0) {
            if (record_tx_again(db, p, k, &conflicts, res)) {
                continue;
            }
            return 0;
        }
        if (taken) {
            ospab_db_end(db, 0);
            ospab_ippool_exhausted(db, p, a->now, lease.exhausted);
            res->log = apr_psprintf(p, "IP pool '%s' has no free address", lease.exhausted);
            ospab_result_error(p, res, 409, apr_psprintf(p, "no free IP address is left in "
                               "pool '%s': a server cannot be made now, please contact "
                               "support", lease.exhausted), NULL);
            return 0;
        }
        if (lease.ip4 || lease.ip6) {
            char *ip = apr_pstrdup(p, lease.ip4 ? lease.ip4 : lease.ip6);
            const char *ipargs[3];

            *strchr(ip, '/') = '\0';
            ipargs[0] = ip;
            ipargs[1] = now;
            ipargs[2] = vps_id;
            if (ospab_db_exec(db, p, "ospab_vps_set_ip", 3, ipargs, NULL) != APR_SUCCESS) {
                if (record_tx_again(db, p, k, &conflicts, res)) {
                    continue;
                }
                return 0;
            }
        }
        if (ospab_vps_load(db, p, "ospab_vps_get", vps_id, &v) != APR_SUCCESS || !v
            || ospab_db_end(db, 1) != APR_SUCCESS) {
            /* Galera: another node's create took the same node's or pool's row; nothing
             * outside the database was done yet, so the record's transaction runs again */
            if (record_tx_again(db, p, k, &conflicts, res)) {
                continue;
            }
            return 0;
        }
        if (ospab_task_begin(db, p, a, v, "create", &task_id, res)) {
            return 0;
        }
        if (k->qemu) {
            rv = kvm_clone(db, p, k, t, v, task_id, &lease, &pr);
        }
        else {
            rv = lxc_create(p, k, t, v, &lease, &pr);
        }
        if (rv != APR_SUCCESS) {
            /* nothing was created: the record goes again */
            ospab_task_finish(db, p, a, task_id, 0, NULL, pr.message ? pr.message : "failed");
            ospab_db_exec(db, p, "ospab_vps_detach_tasks", 1, &vps_id, NULL);
            ospab_ippool_release(db, p, vps_id, a->now, 1);
            ospab_db_exec(db, p, "ospab_vps_delete", 1, &vps_id, NULL);
            if (pr.outcome == OSPAB_PVE_HTTP_ERROR && pr.message
                && strstr(pr.message, "already exists")) {
                apr_int64_t next;

                /* a guest the panel does not know holds it: nextid again (the lowest free
                 * id; the ids after a hole are often all taken) */
                if (ospab_srv_pve_call(c, p, a, "GET", "/cluster/nextid", NULL, &pr)
                        == APR_SUCCESS && ospab_pve_int(pr.data, &next) && next > k->vmid + 1) {
                    k->vmid = next - 1;
                }
                continue;
            }
            ospab_srv_pve_failed(p, &pr, "create", res);
            return 0;
        }
        if (ospab_task_started(db, p, a, task_id, APR_SUCCESS, &pr, "create", &upid, res)) {
            return 0;
        }
        {
            /* seed 003's answer; the root password is shown this once and kept nowhere */
            json_t *o = json_object();

            json_object_set_new(o, "id", ospab_json_int_or_null(vps_id));
            json_object_set_new(o, "status", json_string("creating"));
            json_object_set_new(o, "proxmoxId", ospab_json_int_or_null(v->vmid));
            json_object_set_new(o, "ipAddress", ospab_json_str_or_null(v->ip));
            json_object_set_new(o, "rootPassword", json_string(k->password));
            json_object_set_new(o, "taskId", json_string(upid));
            ospab_srv_ok_body(p, res, 201, o);
        }
        return 0;
    }
    return 2;
}

/* 1 when node's storage lists volid (an OS template: "local:vztmpl/..."). */
static int node_has_template(apr_pool_t *p, const ospab_server_conf_t *c, const ospab_actor_t *a,
                             const char *node, const char *volid)
{
    static const ospab_pve_param_t vztmpl[] = { { "content", "vztmpl" }, { NULL, NULL } };
    const char *colon = strchr(volid, ':');
    ospab_pve_result_t pr;
    size_t i;

    if (!colon || ospab_srv_pve_call(c, p, a, "GET", ospab_pve_path(p, "nodes", node, "storage",
                                     apr_pstrndup(p, volid, (apr_size_t)(colon - volid)),
                                     "content", NULL), vztmpl, &pr) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < json_array_size(pr.data); ++i) {
        const char *id = json_string_value(json_object_get(json_array_get(pr.data, i), "volid"));

        if (id && !strcmp(id, volid)) {
            return 1;
        }
    }
    return 0;
}

/* The OS entry's template VM in nc's cluster (looked up once per cluster and create);
 * NULL when Proxmox could not be asked (*why says so). */
typedef struct {
    const void *pve;
    ospab_kvm_template_t t;
} kvm_seen_t;

static const ospab_kvm_template_t *kvm_template_of(apr_pool_t *p, create_t *k,
                                                   const ospab_server_conf_t *nc,
                                                   const char **why)
{
    ospab_pve_result_t pr;
    kvm_seen_t *seen;
    int i;

    if (!k->tmpls) {
        k->tmpls = apr_array_make(p, 2, sizeof(kvm_seen_t));
    }
    for (i = 0; i < k->tmpls->nelts; ++i) {
        seen = &APR_ARRAY_IDX(k->tmpls, i, kvm_seen_t);
        if (seen->pve == (const void *)nc->pve) {
            return &seen->t;
        }
    }
    seen = apr_array_push(k->tmpls);
    seen->pve = nc->pve;
    if (ospab_kvm_template(p, nc, k->a, k->os->template_, &seen->t, &pr) != APR_SUCCESS) {
        *why = apr_psprintf(p, "its cluster did not answer (%s)",
                            pr.message ? pr.message : "unreachable");
        --k->tmpls->nelts;
        return NULL;
    }
    return &seen->t;
}

/* The targets of a create, best first: the registered nodes that can take it (placement)
 * or the configured node. 0: *targets; 1: res is set (none can). */
static int targets_of(ospab_db_t *db, apr_pool_t *p, create_t *k, apr_array_header_t **targets,
                      ospab_result_t *res)
{
    const ospab_server_conf_t *c = k->c, *nc;
    apr_array_header_t *nodes, *ranked;
    const char *why, *cluster = NULL;
    int any, i;

    *targets = apr_array_make(p, 4, sizeof(target_t));
    if (ospab_nodes_load(db, p, &nodes, &any) != APR_SUCCESS
        || ospab_db_select_value(db, p, "ospab_tariff_cluster", 1, &k->tariff_s, &cluster)
            != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (!any) {
        target_t *t;

        if (!c->pve || !c->node) {
            ospab_result_error(p, res, 503, "server management is not configured "
                               "(OspabProxmoxURL, OspabProxmoxNode, or registered nodes)",
                               NULL);
            return 1;
        }
        t = apr_array_push(*targets);
        t->id = NULL;
        t->name = c->node;
        t->storage = c->storage;
        t->bridge = c->bridge;
        t->c = c;
        t->tmpl = NULL;
        if (k->qemu) {
            const char *unfit = NULL;

            if (!(t->tmpl = kvm_template_of(p, k, c, &unfit))
                || (unfit = ospab_kvm_unfit(p, t->tmpl, c->node)) != NULL) {
                res->log = apr_psprintf(p, "no KVM server can be made on %s: %s", c->node,
                                        unfit);
                ospab_result_error(p, res, 503, "this OS cannot be installed now: please "
                                   "contact support", NULL);
                return 1;
            }
        }
        return 0;
    }
    ranked = ospab_nodes_rank(p, nodes, &k->need, k->a->now, &why);
    for (i = 0; i < ranked->nelts; ++i) {
        const ospab_node_t *n = APR_ARRAY_IDX(ranked, i, const ospab_node_t *);
        const ospab_kvm_template_t *tmpl = NULL;
        const char *skip = NULL;
        target_t *t;

        /* the tariff's cluster only; not a cluster taken out of placement, nor one the
         * panel cannot reach; and a node that has not got the template cannot make it */
        if (cluster && (!n->cluster_id || strcmp(cluster, n->cluster_id))) {
            skip = "not in the tariff's cluster";
        }
        else if (!n->cluster_enabled) {
            skip = "its cluster takes no new servers";
        }
        else if (!(nc = ospab_srv_for(db, p, c, n->name, NULL))) {
            skip = "its cluster cannot be reached by the panel";
        }
        else if (k->qemu) {
            if ((tmpl = kvm_template_of(p, k, nc, &skip)) != NULL) {
                skip = ospab_kvm_unfit(p, tmpl, n->name);
            }
        }
        else if (!node_has_template(p, nc, k->a, n->name, k->os->template_)) {
            skip = apr_pstrcat(p, "no ", k->os->template_, NULL);
        }
        if (skip) {
            why = apr_psprintf(p, "%s%s%s: %s", why ? why : "", why ? "; " : "", n->name,
                               skip);
            continue;
        }
        t = apr_array_push(*targets);
        t->c = nc;
        t->tmpl = tmpl;
        t->id = n->id;
        t->name = n->name;
        t->storage = n->storage ? n->storage : c->storage;
        t->bridge = n->bridge ? n->bridge : c->bridge;
    }
    if (!(*targets)->nelts) {
        res->log = apr_psprintf(p, "no node can take a server of %s vCPU, %s MB, %s GB: %s",
                                k->tariff->cores, k->tariff->memory, k->tariff->disk,
                                why ? why : "none takes new servers");
        ospab_result_error(p, res, 409, "no server of this size can be made now: try a "
                           "smaller tariff, or contact support", NULL);
        return 1;
    }
    return 0;
}

void ospab_server_create(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const ospab_actor_t *a, json_t *body,
                         ospab_result_t *res)
{
    json_t *errors = json_object();
    apr_int64_t os_id = 0, tariff_id = 0;
    const ospab_os_t *os;
    const ospab_tariff_t *tariff;
    ospab_pve_result_t pr;
    apr_array_header_t *targets;
    create_t k;
    int i, rc = 1;

    memset(res, 0, sizeof(*res));
    memset(&k, 0, sizeof(k));
    if (!who->admin && !c->self_service) {
        json_decref(errors);
        ospab_result_error(p, res, 403, "ordering servers here is disabled: order on the main "
                           "site", NULL);
        return;
    }
    if (!json_is_object(body) || !ospab_srv_positive_int(json_object_get(body, "osId"), &os_id)) {
        json_object_set_new(errors, "osId", json_string("must be the id of an OS template"));
    }
    if (!json_is_object(body)
        || !ospab_srv_positive_int(json_object_get(body, "tariffId"), &tariff_id)) {
        json_object_set_new(errors, "tariffId", json_string("must be the id of a tariff"));
    }
    if (json_object_size(errors)) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "request", errors), errors);
        return;
    }
    k.os_s = apr_psprintf(p, "%" APR_INT64_T_FMT, os_id);
    k.tariff_s = apr_psprintf(p, "%" APR_INT64_T_FMT, tariff_id);
    if (ospab_os_load(db, p, k.os_s, &os) != APR_SUCCESS
        || ospab_tariff_load(db, p, "ospab_tariff_get", k.tariff_s, &tariff) != APR_SUCCESS) {
        json_decref(errors);
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!os) {
        json_object_set_new(errors, "osId", json_string(apr_psprintf(p, "OS template %s does "
                                                                     "not exist", k.os_s)));
    }
    if (!tariff) {
        json_object_set_new(errors, "tariffId", json_string(apr_psprintf(p, "tariff %s does "
                                                                         "not exist", k.tariff_s)));
    }
    if (json_object_size(errors)) {
        ospab_result_error(p, res, 422, ospab_fields_summary(p, "request", errors), errors);
        return;
    }
    json_decref(errors);
    if (!c->pve && !c->clusters) {
        ospab_result_error(p, res, 503, "server management is not configured "
                           "(OspabProxmoxURL, OspabProxmoxNode)", NULL);
        return;
    }
    if (over_quota(db, p, c, who, res)
        || ospab_sshkeys_for_create(db, p, who->user_id, json_object_get(body, "sshKeyIds"),
                                    &k.ssh_keys, res)) {
        return;
    }
    k.c = c;
    k.who = who;
    k.a = a;
    k.os = os;
    k.tariff = tariff;
    k.qemu = os->kind && !strcmp(os->kind, "qemu");
    k.need.cores = apr_atoi64(tariff->cores);
    k.need.memory = apr_atoi64(tariff->memory);
    k.need.disk = apr_atoi64(tariff->disk);
    if (targets_of(db, p, &k, &targets, res)) {
        return;
    }
    k.password = ospab_server_new_password(p);
    for (i = 0; i < targets->nelts && rc == 1; ++i) {
        const target_t *t = &APR_ARRAY_IDX(targets, i, target_t);

        /* Proxmox's next free vmid, of the target's cluster. Creates running at the same
         * time get the same one until the first container exists: whoever loses (our
         * unique node+vmid, or Proxmox's "already exists") moves on to another rather than
         * asking again. */
        if (!i || t->c->pve != k.c->pve) {
            k.c = t->c;
            if (ospab_srv_pve_call(k.c, p, a, "GET", "/cluster/nextid", NULL, &pr)
                    != APR_SUCCESS) {
                ospab_srv_pve_failed(p, &pr, "nextid", res);
                return;
            }
            if (!ospab_pve_int(pr.data, &k.vmid)) {
                res->log = "Proxmox nextid: not a number";
                ospab_result_error(p, res, 502, "Proxmox gave an answer the panel cannot read",
                                   NULL);
                return;
            }
        }
        rc = create_on(db, p, &k, t, res);
    }
    if (rc == 1) {
        /* every node that could take it had been filled by creates at the same time */
        res->log = "the nodes that could take the server were filled meanwhile";
        ospab_result_error(p, res, 409, "no server of this size can be made now: try a "
                           "smaller tariff, or contact support", NULL);
    }
    else if (rc == 2) {
        res->log = apr_psprintf(p, "%d vmids in a row were taken", CREATE_ATTEMPTS);
        ospab_result_error(p, res, 409, "could not reserve a vmid, try again", NULL);
    }
}

/* ---- delete ----------------------------------------------------------------------------- */

const ospab_pve_param_t *ospab_srv_destroy_params(const ospab_vps_t *v)
{
    static const ospab_pve_param_t ct[] = { { "purge", "1" }, { "force", "1" },
                                            { NULL, NULL } };
    static const ospab_pve_param_t vm[] = { { "purge", "1" },
                                            { "destroy-unreferenced-disks", "1" },
                                            { NULL, NULL } };

    return strcmp(ospab_vps_kind(v), "qemu") ? ct : vm;
}

/* DELETE's answer when the record went at once, without a Proxmox task. */
static void deleted_now(apr_pool_t *p, ospab_result_t *res)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_string("deleted"));
    json_object_set_new(o, "taskId", json_null());
    ospab_srv_ok_body(p, res, 200, o);
}

void ospab_server_delete(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                         ospab_result_t *res)
{
    const char *task_id, *upid;
    int stop_first;
    ospab_pve_result_t pr;
    const ospab_vps_t *v;
    json_t *o;

    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    if (ospab_vps_load_owned(db, p, who, id, &v, res)
        || ospab_srv_refuse_suspended(p, who, v, "delete", res)) {
        return;
    }
    if (!strcmp(v->hypervisor, "proxmox") && !v->vmid
        && !strcmp(v->status, "error")) {
        /* its create failed and Proxmox removed the container: only the record goes (a
         * record the billing site synced without a vmid is not ours to delete) */
        if (ospab_audit(db, p, a, "vps.delete", "vps", id, NULL) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        ospab_task_apply(db, p, c, a, v, "delete", 1);
        deleted_now(p, res);
        return;
    }
    if (ospab_task_prepare(db, p, &c, who, a, id, "delete", &v, &task_id, res)) {
        return;
    }
    stop_first = !strcmp(ospab_vps_kind(v), "qemu") && v->status
                 && strcmp(v->status, "stopped") && strcmp(v->status, "error");
    if (stop_first) {
        rv = ospab_srv_pve_call(c, p, a, "POST", ospab_srv_guest_path(p, v, "status", "stop",
                                                                      NULL), NULL, &pr);
    }
    else {
        rv = ospab_srv_pve_call(c, p, a, "DELETE", ospab_srv_guest_path(p, v, NULL, NULL, NULL),
                                ospab_srv_destroy_params(v), &pr);
    }
    if (rv != APR_SUCCESS && pr.outcome == OSPAB_PVE_HTTP_ERROR && pr.message
        && strstr(pr.message, "does not exist")) {
        /* gone from Proxmox already (deleted there by hand): the record follows */
        ospab_task_finish(db, p, a, task_id, 1, "OK", NULL);
        ospab_task_apply(db, p, c, a, v, "delete", 1);
        deleted_now(p, res);
        return;
    }
    if (ospab_task_started(db, p, a, task_id, rv, &pr, "delete", &upid, res)) {
        return;
    }
    if (stop_first) {
        ospab_task_continue(db, p, a, task_id, upid, "delete:stop");
    }
    ospab_server_set_status(db, p, a, id, "deleting");
    o = json_object();
    json_object_set_new(o, "status", json_string("deleted"));
    json_object_set_new(o, "taskId", json_string(upid));
    ospab_srv_ok_body(p, res, 200, o);
}

/* ---- root password ---------------------------------------------------------------------- */

/* The owner's notice that the root password changed (never the password). */
static void password_mail(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                          const ospab_vps_t *v, const char *task_id)
{
    json_t *vars = json_pack("{s:I, s:s?}", "serverId", (json_int_t)apr_atoi64(v->id),
                             "serverName", v->name);
    const char *err;

    if (v->user_id) {
        ospab_mail_queue_user(db, p, a->now, v->user_id, "root-password", vars,
                              apr_pstrcat(p, "root-password:", task_id, NULL), &err);
    }
    json_decref(vars);
}

/* OspabPasswordCloudInit: a KVM server whose guest agent does not answer gets the password
 * through cloud-init (its SHA-512 crypt hash as cipassword: a new cloud-init instance, so
 * cloud-init sets it at the next boot) and a reboot, which the task row follows. The
 * answer says so. */
static void password_by_cloudinit(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                                  const ospab_actor_t *a, const ospab_vps_t *v,
                                  const char *task_id, const char *password,
                                  ospab_result_t *res)
{
    ospab_pve_param_t ci[] = { { "cipassword", NULL }, { NULL, NULL } };
    const char *hash, *upid;
    ospab_pve_result_t pr;
    json_t *o;

    if (ospab_password_crypt(p, password, "$6$", &hash) != APR_SUCCESS) {
        ospab_task_finish(db, p, a, task_id, 0, NULL, "no SHA-512 crypt in libcrypt");
        res->log = "password by cloud-init: libcrypt has no SHA-512 crypt";
        ospab_result_error(p, res, 500, "internal error", NULL);
        return;
    }
    ci[0].value = hash;
    if (ospab_srv_pve_call(c, p, a, "PUT", ospab_srv_guest_path(p, v, "config", NULL, NULL), ci,
                           &pr) != APR_SUCCESS) {
        ospab_task_finish(db, p, a, task_id, 0, NULL, ospab_pve_message(p, &pr));
        ospab_srv_pve_failed(p, &pr, "config", res);
        return;
    }
    if (ospab_task_started(db, p, a, task_id,
                           ospab_srv_pve_call(c, p, a, "POST",
                                              ospab_srv_guest_path(p, v, "status", "reboot",
                                                                   NULL), NULL, &pr),
                           &pr, "reboot", &upid, res)) {
        return;
    }
    password_mail(db, p, a, v, task_id);
    o = json_object();
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "password", json_string(password));
    json_object_set_new(o, "method", json_string("cloud-init"));
    json_object_set_new(o, "taskId", json_string(upid));
    json_object_set_new(o, "note", json_string("the server's guest agent does not answer: "
                                               "the password is set by cloud-init while the "
                                               "server restarts now"));
    ospab_srv_ok_body(p, res, 200, o);
}

void ospab_server_password(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                           const ospab_principal_t *who, const ospab_actor_t *a,
                           const char *id, ospab_result_t *res)
{
    const char *task_id, *password = ospab_server_new_password(p), *err = NULL;
    const ospab_vps_t *v;
    json_t *o;

    memset(res, 0, sizeof(*res));
    if (ospab_vps_load_owned(db, p, who, id, &v, res)
        || ospab_srv_refuse_suspended(p, who, v, "password", res)
        || ospab_srv_on_proxmox(db, p, &c, v, res)) {
        return;
    }
    if (!strcmp(ospab_vps_kind(v), "lxc") && !c->ssh) {
        ospab_result_error(p, res, 503, "password reset is not configured "
                           "(OspabProxmoxSSHKey)", NULL);
        return;
    }
    ospab_task_follow_up(db, p, c, a, v);
    if (ospab_vps_load_owned(db, p, who, id, &v, res)
        || ospab_task_begin(db, p, a, v, "password", &task_id, res)) {
        return;
    }
    if (!strcmp(ospab_vps_kind(v), "lxc")) {
        /* no API for it: `pct exec <vmid> -- chpasswd` on the node, the password on stdin */
        if (a->effects) {
            ++*a->effects;
        }
        /* the node's own sshd when it is registered with one (docs/operations.md) */
        if (ospab_ssh_set_root_password(p, ospab_node_ssh(db, p, c->ssh, v->node),
                                        atol(v->vmid), password, &err)
            != APR_SUCCESS) {
            ospab_task_finish(db, p, a, task_id, 0, NULL, err);
            res->log = apr_psprintf(p, "password reset over SSH failed: %s", err);
            ospab_result_error(p, res, 502, "the password could not be set on the node", NULL);
            return;
        }
    }
    else {
        ospab_pve_param_t params[] = { { "username", "root" }, { "password", password },
                                       { NULL, NULL } };
        ospab_pve_result_t pr;

        if (ospab_srv_pve_call(c, p, a, "POST",
                               ospab_srv_guest_path(p, v, "agent", "set-user-password", NULL),
                               params, &pr) != APR_SUCCESS) {
            if (c->password_cloudinit && pr.outcome == OSPAB_PVE_HTTP_ERROR && pr.message
                && (strstr(pr.message, "guest agent is not running")
                    || strstr(pr.message, "No QEMU guest agent configured"))) {
                password_by_cloudinit(db, p, c, a, v, task_id, password, res);
                return;
            }
            ospab_task_finish(db, p, a, task_id, 0, NULL, pr.message);
            ospab_srv_pve_failed(p, &pr, "set-user-password", res);
            return;
        }
    }
    ospab_task_finish(db, p, a, task_id, 1, "OK", NULL);
    password_mail(db, p, a, v, task_id);
    o = json_object();
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "password", json_string(password));
    ospab_srv_ok_body(p, res, 200, o);
}

int ospab_server_panel_made(ospab_db_t *db, apr_pool_t *p, const char *id, int *made)
{
    const char *n = NULL;

    if (ospab_db_select_value(db, p, "ospab_vps_panel_made", 1, &id, &n) != APR_SUCCESS) {
        return 1;
    }
    *made = n && strcmp(n, "0");
    return 0;
}

void ospab_srv_billing(const ospab_vps_t *v, ospab_principal_t *who)
{
    who->user_id = v->user_id;
    who->admin = 1;
    who->session = NULL;
}

int ospab_server_sync_destroy(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                              const ospab_actor_t *a, const ospab_vps_t *v, const char **upid,
                              ospab_result_t *res)
{
    ospab_principal_t who;

    ospab_srv_billing(v, &who);
    ospab_server_delete(db, p, c, &who, a, v->id, res);
    if (res->status != 200) {
        return 1;
    }
    *upid = json_string_value(json_object_get(res->body, "taskId"));
    return 0;
}

/* ---- console ------------------------------------------------------------------------------ */

void ospab_server_console(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                          const ospab_principal_t *who, const char *panel, json_t *body,
                          ospab_result_t *res)
{
    ospab_actor_t act = { .type = "user", .id = who->user_id, .now = apr_time_now() };
    ospab_console_kind_e kind;
    const ospab_actor_t *a = &act;
    apr_int64_t n;
    const ospab_vps_t *v = NULL;
    ospab_vps_t found;
    const char *key, *token;
    json_t *o;
    apr_array_header_t *rows;

    memset(res, 0, sizeof(*res));
    if (json_is_object(body) && ospab_pve_int(json_object_get(body, "serverId"), &n)) {
        key = apr_psprintf(p, "%" APR_INT64_T_FMT, n);
        if (ospab_vps_load_owned(db, p, who, key, &v, res)) {
            return;
        }
    }
    else if (json_is_object(body) && ospab_pve_int(json_object_get(body, "vmid"), &n)) {
        const char *args[2];

        args[0] = apr_psprintf(p, "%" APR_INT64_T_FMT, n);
        args[1] = who->user_id;
        if (ospab_db_select(db, p, who->admin ? "ospab_vps_by_vmid_any" : "ospab_vps_by_vmid",
                            who->admin ? 1 : 2, args, &rows, NULL) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        if (rows->nelts > 0) {
            ospab_row_fill(&ospab_vps_row, APR_ARRAY_IDX(rows, 0, ospab_row_t), &found);
            v = &found;
        }
        if (!v) {
            ospab_result_error(p, res, 404, "server not found", NULL);
            return;
        }
    }
    else {
        json_t *f = json_object();

        json_object_set_new(f, "vmid", json_string("give vmid or serverId"));
        ospab_result_error(p, res, 400, "vmid or serverId is required", f);
        return;
    }
    if (ospab_srv_refuse_suspended(p, who, v, "console", res)
        || ospab_srv_on_proxmox(db, p, &c, v, res)) {
        return;
    }
    /* no Proxmox address, port or ticket for the browser: a one-time token for the
     * panel's own console page, whose WebSocket the agent serves (lib/ospab_console.h);
     * the token is in the fragment, so no server logs it */
    kind = strcmp(ospab_vps_kind(v), "qemu") ? OSPAB_CONSOLE_TERMINAL : OSPAB_CONSOLE_VNC;
    if (ospab_console_issue(db, p, a->now, who->user_id, v->id, kind, &token) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    o = ospab_srv_success(NULL, NULL);
    json_object_set_new(o, "url", json_string(apr_pstrcat(p, panel, "console.html#token=",
                        token, "&kind=", kind == OSPAB_CONSOLE_VNC ? "vnc" : "terminal",
                        "&server=", v->id, NULL)));
    ospab_srv_ok_body(p, res, 200, o);
}

/* ---- tasks --------------------------------------------------------------------------------- */

void ospab_server_tasks(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                        const ospab_principal_t *who, const char *id, ospab_result_t *res)
{
    ospab_actor_t act = { .type = "user", .id = who->user_id, .now = apr_time_now() };
    const ospab_actor_t *a = &act;
    apr_array_header_t *rows;
    const ospab_vps_t *v;
    ospab_jw_t w;
    int i;

    memset(res, 0, sizeof(*res));
    if (ospab_vps_load_owned(db, p, who, id, &v, res)) {
        return;
    }
    if ((c->pve || c->clusters) && !ospab_srv_on_proxmox(db, p, &c, v, res)) {
        ospab_task_follow_up(db, p, c, a, v);
    }
    memset(res, 0, sizeof(*res));
    if (ospab_db_select(db, p, "ospab_task_list", 1, &id, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_jw_init(&w, p, 256 * (apr_size_t)rows->nelts + 16);
    ospab_jw_arr(&w);
    for (i = 0; i < rows->nelts; ++i) {
        ospab_task_t t;
        const char *half;

        ospab_row_fill(&ospab_task_list_row, APR_ARRAY_IDX(rows, i, ospab_row_t), &t);
        /* "restart:start" is the second half of a restart: to the customer, a restart */
        half = strchr(t.action, ':');
        ospab_jw_obj(&w);
        ospab_jw_key(&w, "id");
        ospab_jw_int_text(&w, t.id);
        ospab_jw_key(&w, "action");
        ospab_jw_str(&w, half ? apr_pstrndup(p, t.action, (apr_size_t)(half - t.action))
                              : t.action);
        ospab_jw_key(&w, "status");
        ospab_jw_str(&w, t.status);
        ospab_jw_key(&w, "upid");
        ospab_jw_str(&w, t.upid);
        /* a failure in the customer's words; admins see Proxmox's own */
        ospab_jw_key(&w, "exitstatus");
        ospab_jw_str(&w, who->admin || !t.exitstatus || !strcmp(t.exitstatus, "OK")
                         ? t.exitstatus : ospab_pve_error_text(p, t.exitstatus));
        ospab_jw_key(&w, "error");
        ospab_jw_str(&w, who->admin ? t.error : ospab_pve_error_text(p, t.error));
        ospab_jw_key(&w, "createdAt");
        ospab_jw_str(&w, ospab_time_api(p, t.created_at));
        ospab_jw_key(&w, "updatedAt");
        ospab_jw_str(&w, ospab_time_api(p, t.updated_at));
        ospab_jw_key(&w, "finishedAt");
        ospab_jw_str(&w, ospab_time_api(p, t.finished_at));
        ospab_jw_obj_end(&w);
    }
    ospab_jw_arr_end(&w);
    res->status = 200;
    res->text = ospab_jw_finish(&w, NULL);
}
