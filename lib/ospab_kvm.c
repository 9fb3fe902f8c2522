/* ospab core: KVM guests (QEMU) made from a template VM (issue 14). A create clones the
 * OS entry's template VM, then the steps the task machine (ospab_task.c) chains after it
 * run here: "create:config" (cores, memory, the network and cloud-init: user, password
 * hash, SSH keys, addresses, DNS), "create:resize" (the boot disk grown to the tariff's)
 * and, in ospab_task.c, "create:start". Each is a Proxmox task followed like the others;
 * what the steps need waits in the task row (tasks.params, 012_task_params.sql). A step
 * that fails takes the half-made VM away. */
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>
#include <apr_lib.h>

#include "ospab_server_int.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_ippool.h"

/* ---- the template ------------------------------------------------------------------------ */

/* Rounded up. */
apr_int64_t ospab_kvm_disk_gb(const char *value)
{
    const char *s = value;
    char *end;
    apr_int64_t n;

    while ((s = strstr(s, "size=")) != NULL) {
        if (s == value || s[-1] == ',') {
            break;
        }
        s += 5;
    }
    if (!s) {
        return 0;
    }
    n = apr_strtoi64(s + 5, &end, 10);
    if (n <= 0) {
        return 0;
    }
    switch (*end) {
    case 'T':
        return n * 1024;
    case 'G':
        return n;
    case 'M':
        return (n + 1023) / 1024;
    case 'K':
        return (n + 1024 * 1024 - 1) / (1024 * 1024);
    default:                            /* bytes */
        return (n + (APR_INT64_C(1) << 30) - 1) >> 30;
    }
}

/* A disk of the VM (not the cloud-init drive, not a CD-ROM): 1. */
static int is_disk(const char *key, const char *value)
{
    static const char *const buses[] = { "scsi", "virtio", "sata", "ide", NULL };
    const char *const *b;

    if (!value || strstr(value, "cloudinit") || strstr(value, "media=cdrom")
        || !strchr(value, ':')) {
        return 0;
    }
    for (b = buses; *b; ++b) {
        apr_size_t n = strlen(*b);

        if (!strncmp(key, *b, n) && apr_isdigit(key[n])) {
            return 1;
        }
    }
    return 0;
}

/* The first disk of "boot: order=...", else the first disk on scsi, virtio, sata, ide in
 * that order. */
const char *ospab_kvm_boot_disk(apr_pool_t *p, json_t *config)
{
    static const char *const buses[] = { "scsi", "virtio", "sata", "ide", NULL };
    const char *boot = json_string_value(json_object_get(config, "boot"));
    const char *const *b;
    int i;

    if (boot && !strncmp(boot, "order=", 6)) {
        char *last, *dev, *order = apr_pstrdup(p, boot + 6);

        for (dev = apr_strtok(order, ";,", &last); dev; dev = apr_strtok(NULL, ";,", &last)) {
            if (is_disk(dev, json_string_value(json_object_get(config, dev)))) {
                return dev;
            }
        }
    }
    for (b = buses; *b; ++b) {
        for (i = 0; i < 31; ++i) {
            const char *key = apr_psprintf(p, "%s%d", *b, i);

            if (is_disk(key, json_string_value(json_object_get(config, key)))) {
                return key;
            }
        }
    }
    return NULL;
}

apr_status_t ospab_kvm_template(apr_pool_t *p, const ospab_server_conf_t *c,
                                const ospab_actor_t *a, const char *vmid,
                                ospab_kvm_template_t *t, ospab_pve_result_t *pr)
{
    static const ospab_pve_param_t vms[] = { { "type", "vm" }, { NULL, NULL } };
    apr_int64_t want = apr_atoi64(vmid), got, tmpl;
    const char *value;
    json_t *config;
    size_t i;

    memset(t, 0, sizeof(*t));
    t->vmid = vmid;
    if (ospab_srv_pve_call(c, p, a, "GET", "/cluster/resources", vms, pr) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < json_array_size(pr->data); ++i) {
        json_t *r = json_array_get(pr->data, i);

        if (ospab_pve_int(json_object_get(r, "vmid"), &got) && got == want
            && json_is_string(json_object_get(r, "type"))
            && !strcmp(json_string_value(json_object_get(r, "type")), "qemu")) {
            t->node = apr_pstrdup(p, json_string_value(json_object_get(r, "node")));
            if (!ospab_pve_int(json_object_get(r, "template"), &tmpl) || tmpl != 1) {
                t->problem = apr_psprintf(p, "VM %s is not a template", vmid);
            }
            break;
        }
    }
    if (!t->node) {
        t->problem = apr_psprintf(p, "no template VM %s in the cluster", vmid);
        return APR_SUCCESS;
    }
    if (t->problem) {
        return APR_SUCCESS;
    }
    if (ospab_srv_pve_call(c, p, a, "GET", ospab_pve_path(p, "nodes", t->node, "qemu", vmid,
                                                          "config", NULL), NULL, pr)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    config = pr->data;
    if (!(t->disk = ospab_kvm_boot_disk(p, config))) {
        t->problem = apr_psprintf(p, "template VM %s has no disk", vmid);
        return APR_SUCCESS;
    }
    value = json_string_value(json_object_get(config, t->disk));
    t->storage = apr_pstrndup(p, value, (apr_size_t)(strchr(value, ':') - value));
    t->size_gb = ospab_kvm_disk_gb(value);
    /* a clone to another node needs the disks on storage every node sees */
    if (ospab_srv_pve_call(c, p, a, "GET", ospab_pve_path(p, "nodes", t->node, "storage", NULL),
                           NULL, pr) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < json_array_size(pr->data); ++i) {
        json_t *s = json_array_get(pr->data, i);
        const char *id = json_string_value(json_object_get(s, "storage"));
        apr_int64_t shared;

        if (id && !strcmp(id, t->storage)) {
            t->shared = ospab_pve_int(json_object_get(s, "shared"), &shared) && shared == 1;
            break;
        }
    }
    return APR_SUCCESS;
}

const char *ospab_kvm_unfit(apr_pool_t *p, const ospab_kvm_template_t *t, const char *node)
{
    if (t->problem) {
        return t->problem;
    }
    if (strcmp(t->node, node) && !t->shared) {
        return apr_psprintf(p, "template VM %s is on %s, on storage %s that is not shared",
                            t->vmid, t->node, t->storage);
    }
    return NULL;
}

apr_status_t ospab_kvm_clone(apr_pool_t *p, const ospab_server_conf_t *c,
                             const ospab_actor_t *a, const ospab_kvm_template_t *t,
                             const char *node, const char *storage, const char *vmid,
                             const char *name, ospab_pve_result_t *pr)
{
    ospab_pve_param_t params[7];
    int i = 0;

    params[i++] = (ospab_pve_param_t){ "newid", vmid };
    params[i++] = (ospab_pve_param_t){ "full", "1" };
    params[i++] = (ospab_pve_param_t){ "name", name };
    if (strcmp(node, t->node)) {
        /* onto another node: qemu-server's clone runs on the template's node and refuses a
         * target storage that is not shared ("can't clone to non-shared storage"); the
         * node's storage is most often local, so the disk stays on the template's, which
         * placement made sure is shared (ospab_kvm_unfit) */
        params[i++] = (ospab_pve_param_t){ "target", node };
    }
    else if (storage) {
        params[i++] = (ospab_pve_param_t){ "storage", storage };
    }
    params[i] = (ospab_pve_param_t){ NULL, NULL };
    return ospab_srv_pve_call(c, p, a, "POST", ospab_pve_path(p, "nodes", t->node, "qemu",
                                                             t->vmid, "clone", NULL),
                              params, pr);
}

/* ---- the steps after the clone ------------------------------------------------------------ */

json_t *ospab_kvm_create_params(const ospab_kvm_sizes_t *s, const char *net0,
                                const char *ipconfig0, const char *nameserver,
                                const char *password_hash, const char *ssh_keys)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s, s:s, s:s?}",
                     "cores", s->cores, "memory", s->memory, "disk", s->disk,
                     "bootdisk", s->bootdisk, "net0", net0, "ipconfig0", ipconfig0,
                     "nameserver", nameserver, "ciuser", "root", "cipassword", password_hash,
                     "sshkeys", ssh_keys);
}

static const char *param(json_t *params, const char *name)
{
    return json_string_value(json_object_get(params, name));
}

ospab_kvm_step_e ospab_kvm_step_started(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                        const char *task_id, const char *action,
                                        apr_status_t rv, const ospab_pve_result_t *pr,
                                        const char **why)
{
    if (rv == APR_SUCCESS && json_is_string(pr->data)) {
        ospab_task_continue(db, p, a, task_id, json_string_value(pr->data), action);
        return OSPAB_KVM_STEP_STARTED;
    }
    if (pr->outcome == OSPAB_PVE_UNREACHABLE || pr->outcome == OSPAB_PVE_TIMEOUT) {
        return OSPAB_KVM_STEP_AGAIN;
    }
    *why = rv == APR_SUCCESS ? "Proxmox did not return a task id" : ospab_pve_message(p, pr);
    return OSPAB_KVM_STEP_FAILED;
}

ospab_kvm_step_e ospab_kvm_step(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                                const ospab_actor_t *a, const ospab_vps_t *v,
                                const char *task_id, const char *action, const char **why)
{
    json_t *params = ospab_task_params(db, p, task_id);
    const char *step = strchr(action, ':');
    ospab_pve_result_t pr;
    apr_status_t rv;

    *why = NULL;
    step = step ? step + 1 : "";
    if (!params) {
        *why = "the create's settings are gone";
        return OSPAB_KVM_STEP_FAILED;
    }
    if (!strcmp(step, "config")) {
        /* cloud-init takes the keys URL-encoded (the schema's format "urlencoded") */
        const char *keys = param(params, "sshkeys");
        ospab_pve_param_t cfg[] = {
            { "cores", param(params, "cores") }, { "memory", param(params, "memory") },
            { "net0", param(params, "net0") }, { "ipconfig0", param(params, "ipconfig0") },
            { "nameserver", param(params, "nameserver") }, { "ciuser", param(params, "ciuser") },
            { "cipassword", param(params, "cipassword") },
            { "sshkeys", keys ? ospab_pve_urlencoded(p, keys) : NULL },
            { NULL, NULL }
        };

        rv = ospab_srv_pve_call(c, p, a, "POST", ospab_srv_guest_path(p, v, "config", NULL, NULL),
                                cfg, &pr);
    }
    else if (!strcmp(step, "resize")) {
        const char *disk = param(params, "bootdisk");
        apr_int64_t want = apr_atoi64(param(params, "disk") ? param(params, "disk") : "0");
        ospab_pve_param_t grow[] = { { "disk", disk }, { "size", NULL }, { NULL, NULL } };

        if (!disk) {
            *why = "the create's settings are incomplete";
            return OSPAB_KVM_STEP_FAILED;
        }
        /* the clone has the template's size: grown only when the tariff's is larger */
        if (ospab_srv_pve_call(c, p, a, "GET", ospab_srv_guest_path(p, v, "config", NULL, NULL),
                               NULL, &pr) == APR_SUCCESS
            && ospab_kvm_disk_gb(json_string_value(json_object_get(pr.data, disk))) >= want) {
            return OSPAB_KVM_STEP_SKIPPED;
        }
        if (pr.outcome == OSPAB_PVE_UNREACHABLE || pr.outcome == OSPAB_PVE_TIMEOUT) {
            return OSPAB_KVM_STEP_AGAIN;
        }
        grow[1].value = apr_psprintf(p, "%" APR_INT64_T_FMT "G", want);
        rv = ospab_srv_pve_call(c, p, a, "PUT", ospab_srv_guest_path(p, v, "resize", NULL, NULL),
                                grow, &pr);
    }
    else {
        *why = apr_psprintf(p, "no step %s", action);
        return OSPAB_KVM_STEP_FAILED;
    }
    return ospab_kvm_step_started(db, p, a, task_id, action, rv, &pr, why);
}

void ospab_kvm_discard(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                       const ospab_actor_t *a, const ospab_vps_t *v, int keep)
{
    const char *now = ospab_time_db(p, a->now), *args[2] = { now, v->id };
    ospab_pve_result_t pr;
    apr_status_t rv;
    json_t *details;

    rv = ospab_srv_pve_call(c, p, a, "DELETE", ospab_srv_guest_path(p, v, NULL, NULL, NULL),
                            ospab_srv_destroy_params(v), &pr);
    ospab_server_set_status(db, p, a, v->id, "error");
    details = json_pack("{s:s, s:s, s:b, s:s?}", "node", v->node, "vmid", v->vmid,
                        "removed", rv == APR_SUCCESS, "error",
                        rv == APR_SUCCESS ? NULL : pr.message);
    ospab_audit(db, p, a, "vps.discard", "vps", v->id, details);
    if (rv == APR_SUCCESS && !keep) {
        /* the vmid is free again once Proxmox's destroy ends; the addresses were never
         * those of a running server. A VM that could not be removed keeps both: deleting
         * the server removes it then. */
        ospab_db_exec(db, p, "ospab_vps_clear_vmid", 2, args, NULL);
        ospab_ippool_release(db, p, v->id, a->now, 1);
    }
}
