/* ospab core: records the billing site synced without node/vmid, linked to their guest by
 * the agent (docs/agent.md, "Adoption"): the notes that say why one is not linked yet, the
 * customer's words for them, and the adoption itself. */
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>

#include "ospab_server_int.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_events.h"

/* ---- records not linked to their guest yet (the agent's adoption) --------------------- */

/* The forms of vps.binding_note (ospab_server_binding_note) start so; the name follows. */
#define NOTE_MISSING "no guest named '"
#define NOTE_TAKEN   "the "             /* the guest(s) named '...' ... bound to ... */
#define NOTE_SEVERAL " guests are named '"
#define NOTE_TWINS   " servers are named '"

const char *ospab_server_binding_note(apr_pool_t *p, ospab_binding_e why, const char *name,
                                      int n, const char *guests, const char *servers)
{
    const char *bind = "bind the record with node and vmid in a sync update";

    switch (why) {
    case OSPAB_BINDING_MISSING:
        return apr_psprintf(p, NOTE_MISSING "%s' on the Proxmox clusters: give its guest "
                            "this name, or %s", name, bind);
    case OSPAB_BINDING_TAKEN:
        return n == 1
            ? apr_psprintf(p, "the guest named '%s' (%s) is bound to %s already: %s", name,
                           guests, servers, bind)
            : apr_psprintf(p, "the %d guests named '%s' (%s) are bound to %s already: %s", n,
                           name, guests, servers, bind);
    case OSPAB_BINDING_SEVERAL:
        return apr_psprintf(p, "%d" NOTE_SEVERAL "%s' (%s): %s", n, name, guests, bind);
    case OSPAB_BINDING_TWINS:
    default:
        return apr_psprintf(p, "%d" NOTE_TWINS "%s'%s%s%s and one guest (%s) waits: bind "
                            "each with node and vmid in a sync update", n, name,
                            servers ? " (" : "", servers ? servers : "", servers ? ")" : "",
                            guests);
    }
}

/* What a customer is told of a server the agent has not linked to its guest: the reason
 * of vps.binding_note in their words (guest locations and other servers stay out). */
const char *ospab_srv_unlinked_text(apr_pool_t *p, const ospab_vps_t *v)
{
    const char *note = v->binding_note, *name = v->name;
    const char *why = NULL, *digits;

    if (note) {
        for (digits = note; *digits >= '0' && *digits <= '9'; ++digits) {
        }
        if (!strncmp(note, NOTE_MISSING, strlen(NOTE_MISSING))) {
            why = apr_psprintf(p, "no guest named '%s' was found", name);
        }
        else if (!strncmp(note, NOTE_TAKEN, strlen(NOTE_TAKEN))) {
            why = apr_psprintf(p, "the guest named '%s' is linked to another server", name);
        }
        else if (digits > note && !strncmp(digits, NOTE_SEVERAL, strlen(NOTE_SEVERAL))) {
            why = apr_psprintf(p, "several guests are named '%s'", name);
        }
        else if (digits > note && !strncmp(digits, NOTE_TWINS, strlen(NOTE_TWINS))) {
            why = apr_psprintf(p, "more than one server is named '%s'", name);
        }
    }
    if (!why) {
        /* the agent has not looked yet (it links such servers within a poll or two) */
        return "this server is not linked to its guest on Proxmox yet: try again in a "
               "minute, and ask support if this lasts";
    }
    return apr_psprintf(p, "this server is not linked to its guest on Proxmox yet (%s): "
                        "ask support", why);
}

int ospab_server_adopt(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                       const ospab_adoption_t *ad, int *twins)
{
    const char *now = ospab_time_db(p, a->now);
    /* the guest's state, for the states it can tell (a suspended record stays so) */
    int take = ad->guest_status && (!strcmp(ad->guest_status, "running")
                                    || !strcmp(ad->guest_status, "stopped"))
               && (!strcmp(ad->status, "creating") || !strcmp(ad->status, "running")
                   || !strcmp(ad->status, "stopped"));
    const char *to = take ? ad->guest_status : ad->status;
    const char *args[8] = { ad->node, ad->vmid, ad->kind, to, now, ad->id, ad->name,
                            ad->status };
    const char *name = ad->name;
    const char *count = NULL;
    json_t *details;
    int n = 0, good;

    *twins = 0;
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return -1;
    }
    if (ospab_db_select_value(db, p, "ospab_agent_vps_unbound_named", 1, &name, &count)
        != APR_SUCCESS) {
        ospab_db_end(db, 0);
        return -1;
    }
    if (count && apr_atoi64(count) > 1) {
        /* another unbound record bears the name: which of them is the guest's? */
        ospab_db_end(db, 0);
        *twins = (int)apr_atoi64(count);
        return 2;
    }
    if (ospab_db_exec(db, p, "ospab_agent_vps_adopt", 8, args, &n) != APR_SUCCESS) {
        int constraint = ospab_db_is_constraint(db);

        ospab_db_end(db, 0);
        return constraint ? 0 : -1;     /* bound to another record meanwhile: not now */
    }
    if (n != 1) {
        ospab_db_end(db, 0);
        return 0;                       /* bound, renamed or changed meanwhile */
    }
    details = json_pack("{s:{s:o, s:s}, s:{s:o, s:s}, s:{s:o, s:s}}",
                        "node", "from", ospab_json_str_or_null(ad->old_node), "to", ad->node,
                        "vmid", "from", ospab_json_str_or_null(ad->old_vmid), "to", ad->vmid,
                        "kind", "from", ospab_json_str_or_null(ad->old_kind), "to", ad->kind);
    if (details && strcmp(to, ad->status)) {
        json_object_set_new(details, "status", json_pack("{s:s, s:s}", "from", ad->status,
                                                         "to", to));
    }
    good = details && ospab_audit(db, p, a, "vps.adopt", "vps", ad->id, details) == APR_SUCCESS;
    if (good && strcmp(to, ad->status)) {
        json_t *data = json_pack("{s:I, s:I, s:s, s:s}",
                                 "serverId", (json_int_t)apr_atoi64(ad->id),
                                 "userId", (json_int_t)apr_atoi64(ad->user_id),
                                 "status", to, "previous", ad->status);

        good = data && ospab_event_add(db, p, a->now, OSPAB_EVENT_STATUS, data) == APR_SUCCESS;
        json_decref(data);
    }
    if (ospab_db_end(db, good) != APR_SUCCESS || !good) {
        return -1;
    }
    return 1;
}
