/* ospab core: a server's live status from Proxmox, shaped as seed 003's GET
 * /api/server/{id}/status and as GET /api/vps/{id}/stats. */
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>

#include "ospab_server_int.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_jsonw.h"

/* ---- status ----------------------------------------------------------------------------- */

static const char *const timeframes[] = { "hour", "day", "week", "month", "year", NULL };

static json_t *usage(json_t *cur, const char *used_key, const char *max_key)
{
    double used = 0, max = 0;
    json_t *o = json_object();

    ospab_pve_double(json_object_get(cur, used_key), &used);
    ospab_pve_double(json_object_get(cur, max_key), &max);
    json_object_set_new(o, "used", json_integer((json_int_t)used));
    json_object_set_new(o, "max", json_integer((json_int_t)max));
    json_object_set_new(o, "usage", json_real(max > 0 ? ((long)(used * 1000.0 / max)) / 10.0
                                                      : 0.0));
    return o;
}

json_t *ospab_server_stats_json(const char *vmid, json_t *cur, json_t *rrd)
{
    json_t *data = json_object(), *stats = json_object(), *net = json_object();
    double cpu = 0;
    apr_int64_t n;

    json_object_set_new(data, "vmid", ospab_json_int_or_null(vmid));
    json_object_set(data, "status", json_object_get(cur, "status"));
    json_object_set_new(data, "uptime", json_integer(
        ospab_pve_int(json_object_get(cur, "uptime"), &n) ? (json_int_t)n : 0));
    ospab_pve_double(json_object_get(cur, "cpu"), &cpu);
    json_object_set_new(data, "cpu", json_real(cpu));
    json_object_set_new(data, "memory", usage(cur, "mem", "maxmem"));
    json_object_set_new(data, "disk", usage(cur, "disk", "maxdisk"));
    json_object_set_new(net, "in", json_integer(
        ospab_pve_int(json_object_get(cur, "netin"), &n) ? (json_int_t)n : 0));
    json_object_set_new(net, "out", json_integer(
        ospab_pve_int(json_object_get(cur, "netout"), &n) ? (json_int_t)n : 0));
    json_object_set_new(data, "network", net);
    json_object_set(data, "rrdData", json_is_array(rrd) ? rrd : json_array());
    json_object_set_new(stats, "status", json_string("success"));
    json_object_set_new(stats, "data", data);
    return stats;
}

void ospab_server_status(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const char *id, const char *timeframe,
                         ospab_result_t *res)
{
    ospab_pve_param_t rrd_params[3] = { { "timeframe", NULL }, { "cf", "AVERAGE" },
                                        { NULL, NULL } };
    const char *const *tf;
    ospab_pve_result_t cur, rrd;
    ospab_actor_t act = { .type = "user", .id = who->user_id, .now = apr_time_now() };
    const ospab_actor_t *a = &act;
    const ospab_vps_t *v;
    json_t *stats, *o;

    memset(res, 0, sizeof(*res));
    timeframe = timeframe ? timeframe : "hour";
    for (tf = timeframes; *tf && strcmp(*tf, timeframe); ++tf) {
    }
    if (!*tf) {
        ospab_result_error(p, res, 400, "timeframe must be one of hour, day, week, month, year",
                           NULL);
        return;
    }
    if (ospab_vps_load_owned(db, p, who, id, &v, res) || ospab_srv_on_proxmox(db, p, &c, v, res)) {
        return;
    }
    ospab_task_follow_up(db, p, c, a, v);
    rrd_params[0].value = timeframe;
    if (ospab_srv_pve_call(c, p, a, "GET", ospab_srv_guest_path(p, v, "status", "current", NULL),
                           NULL, &cur) != APR_SUCCESS) {
        ospab_srv_pve_failed(p, &cur, "status", res);
        return;
    }
    if (ospab_srv_pve_call(c, p, a, "GET", ospab_srv_guest_path(p, v, "rrddata", NULL, NULL),
                           rrd_params, &rrd) != APR_SUCCESS) {
        ospab_srv_pve_failed(p, &rrd, "rrddata", res);
        return;
    }
    /* the row again: follow_up may have changed the status */
    if (ospab_vps_load(db, p, "ospab_vps_get", id, &v) != APR_SUCCESS || !v) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    stats = ospab_server_stats_json(v->vmid, cur.data, rrd.data);
    o = json_object();
    json_object_set_new(o, "id", ospab_json_int_or_null(v->id));
    json_object_set_new(o, "status", ospab_json_str_or_null(v->status));
    json_object_set_new(o, "stats", stats);
    ospab_srv_ok_body(p, res, 200, o);
}
