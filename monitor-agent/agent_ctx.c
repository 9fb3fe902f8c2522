/* ospab-agent: the services every part of the agent uses (see agent_ctx.h). */
#include <apr_dbd.h>
#include <apr_strings.h>

#include "agent_ctx.h"

apr_status_t agent_db_open(agent_t *ag, apr_pool_t *p, ospab_db_t *db, const char **why)
{
    const apr_dbd_driver_t *drv;
    apr_dbd_t *handle;
    const char *err = NULL;
    apr_status_t rv;

    if ((rv = apr_dbd_get_driver(p, ag->conf->db_driver, &drv)) != APR_SUCCESS) {
        *why = apr_psprintf(p, "no apr_dbd driver %s (install libaprutil1-dbd-%s)",
                            ag->conf->db_driver, ag->conf->db_driver);
        return rv;
    }
    if ((rv = apr_dbd_open_ex(drv, p, ag->conf->db_params, &handle, &err)) != APR_SUCCESS) {
        /* the driver's message never holds the password, the params may: not logged */
        *why = apr_psprintf(p, "cannot connect to the %s database: %s", ag->conf->db_driver,
                            err ? err : "no reason given");
        return rv;
    }
    ospab_db_init(db, drv, handle, NULL);
    ospab_db_tune(db);
    db->conn_pool = p;
    if ((rv = ospab_db_prepare_all(db, p)) != APR_SUCCESS) {
        *why = apr_psprintf(p, "preparing statements failed (%s): is the schema migrated? "
                            "(ospab-admin migrate)", db->error ? db->error : "?");
        apr_dbd_close(drv, handle);
        return rv;
    }
    return APR_SUCCESS;
}

int agent_db_usable(ospab_db_t *db, apr_pool_t *p)
{
    ospab_row_t row = NULL;

    if (apr_dbd_check_conn(db->driver, p, db->handle) != APR_SUCCESS) {
        return 0;
    }
    return ospab_db_select_one(db, p, "ospab_ping", 0, NULL, &row) == APR_SUCCESS && row;
}

void agent_wake(agent_t *ag)
{
    apr_thread_mutex_lock(ag->lock);
    ag->wake_gen++;
    apr_thread_cond_broadcast(ag->wake);
    apr_thread_mutex_unlock(ag->lock);
}

void agent_publish2(agent_t *ag, apr_int64_t server_id, const char *event, json_t *data,
                    json_t *compact)
{
    if (ag->sio) {
        /* when the agent sent it, in ms since the epoch: a page can show how fresh the
         * data is, and bench/fanout measures the push's latency from it */
        json_int_t now = (json_int_t)apr_time_as_msec(apr_time_now());

        json_object_set_new(data, "sentAt", json_integer(now));
        if (compact) {
            json_object_set_new(compact, "sentAt", json_integer(now));
        }
        agent_sio_publish2(ag->sio, server_id, event, data, compact);
    }
}

void agent_publish(agent_t *ag, apr_int64_t server_id, const char *event, json_t *data)
{
    agent_publish2(ag, server_id, event, data, NULL);
}
