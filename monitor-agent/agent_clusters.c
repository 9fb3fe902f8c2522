/* ospab-agent: the clusters registered in the database (lib/ospab_cluster.h,
 * docs/operations.md "Clusters"), polled beside the config file's [cluster] sections.
 *
 * With a [secrets] key, the monitor thread asks before every poll round whether the
 * clusters table changed (a count and the latest updated_at); when it did, it rebuilds the
 * list it polls: the file's sections first, each taking the URL, token and CA of the row
 * of its name or URL (the database is the one source of truth once a section is imported),
 * then every other row as a cluster of its own. Unchanged clusters keep their clients. The
 * first time, the file's sections are imported as rows (ospab_cluster_import), so that the
 * module, the admin API and this agent see the same clusters. Without a key, the file
 * alone, as before. All of this runs on the monitor thread, the only reader of
 * conf->clusters once the workers run. */
#include <string.h>

#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_strings.h>

#include "agent_monitor.h"
#include "agent_monitor_int.h"
#include "ospab_cluster.h"

/* "https://host:8006/" and "https://host:8006" are the same cluster */
static int same_url(const char *a, const char *b)
{
    apr_size_t la = strlen(a), lb = strlen(b);

    la -= la && a[la - 1] == '/';
    lb -= lb && b[lb - 1] == '/';
    return la == lb && !strncmp(a, b, la);
}

static int same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The PEM of a section's CA file, for its import (NULL: none, or unreadable: the row then
 * trusts the system's CAs, and the log says so). */
static const char *ca_text(apr_pool_t *p, const agent_cluster_t *cl)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t n;
    char *buf;

    if (cl->pve.ca_pem || !cl->pve.ca_file) {
        return cl->pve.ca_pem;
    }
    if (apr_file_open(&f, cl->pve.ca_file, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        return NULL;
    }
    if (apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS || fi.size > 64 * 1024) {
        apr_file_close(f);
        return NULL;
    }
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n + 1);
    if (apr_file_read_full(f, buf, n, &n) != APR_SUCCESS) {
        apr_file_close(f);
        return NULL;
    }
    apr_file_close(f);
    buf[n] = '\0';
    return buf;
}

/* The file's sections as rows, once per configuration. 0: done (or nothing to do). */
static int import_sections(agent_t *ag, ospab_db_t *db, apr_pool_t *p,
                           const apr_array_header_t *file)
{
    ospab_actor_t a = agent_monitor_actor(apr_time_now());
    int i, failed = 0;

    for (i = 0; i < file->nelts; ++i) {
        const agent_cluster_t *cl = &APR_ARRAY_IDX(file, i, agent_cluster_t);
        const char *ca = ca_text(p, cl);
        int rc;

        if (cl->pve.ca_file && !ca) {
            AGENT_WARN("[cluster %s]: ca %s could not be read for the import: the row "
                       "trusts the system's CAs until its CA is set", cl->name,
                       cl->pve.ca_file);
        }
        rc = ospab_cluster_import(db, p, ag->conf->seal_key, &a, cl->name, cl->pve.url,
                                  cl->pve.token, ca);
        if (rc > 0) {
            AGENT_INFO("[cluster %s]: imported into the database (clusters table)", cl->name);
        }
        failed += rc < 0;
    }
    return failed;
}

/* The section of file that row is (by name or URL), or -1. */
static int section_of(const apr_array_header_t *file, const ospab_cluster_t *row)
{
    int i;

    for (i = 0; i < file->nelts; ++i) {
        const agent_cluster_t *cl = &APR_ARRAY_IDX(file, i, agent_cluster_t);

        if (!strcmp(cl->name, row->name) || same_url(cl->pve.url, row->url)) {
            return i;
        }
    }
    return -1;
}

/* The client of the cluster polled so far under name with these settings, or NULL. */
static ospab_pve_t *client_of(const apr_array_header_t *now, const agent_cluster_t *want)
{
    int i;

    for (i = 0; i < now->nelts; ++i) {
        const agent_cluster_t *cl = &APR_ARRAY_IDX(now, i, agent_cluster_t);

        if (!strcmp(cl->name, want->name) && same_text(cl->pve.url, want->pve.url)
            && same_text(cl->pve.token, want->pve.token)
            && same_text(cl->pve.ca_pem, want->pve.ca_pem)
            && same_text(cl->pve.ca_file, want->pve.ca_file)) {
            return cl->client;
        }
    }
    return NULL;
}

void agent_clusters_refresh(agent_t *ag, ospab_db_t *db, apr_pool_t *p)
{
    monitor_t *m = mon_of(ag);
    agent_conf_t *c = ag->conf;
    apr_array_header_t *rows, *list;
    const char *stamp = NULL;
    apr_pool_t *lp;
    int i, extra = 0;

    if (ospab_clusters_stamp(db, p, &stamp) != APR_SUCCESS
        || (m->clusters_stamp && !strcmp(stamp, m->clusters_stamp))) {
        return;
    }
    if (!c->seal_key) {
        /* the file alone, as before; but say once per change what is not polled */
        m->clusters_stamp = apr_pstrdup(m->pool, stamp);
        if (apr_atoi64(stamp) > 0) {
            AGENT_WARN("the database has %" APR_INT64_T_FMT " Proxmox cluster(s) this agent "
                       "polls only when [secrets] key opens their tokens: set it to "
                       "OspabSecretKey's file", apr_atoi64(stamp));
        }
        return;
    }
    if (!m->imported) {
        m->imported = !import_sections(ag, db, p, m->file_clusters);
        if (ospab_clusters_stamp(db, p, &stamp) != APR_SUCCESS) {
            return;
        }
    }
    if (ospab_clusters_load(db, p, c->seal_key, &rows) != APR_SUCCESS) {
        return;
    }
    /* the list lives until the next change: its clients and names are used by every
     * round until then (the few bytes of an old list are not worth a lifetime scheme) */
    apr_pool_create(&lp, m->pool);
    list = apr_array_copy(lp, m->file_clusters);
    for (i = 0; i < rows->nelts; ++i) {
        const ospab_cluster_t *row = &APR_ARRAY_IDX(rows, i, ospab_cluster_t);
        int at = section_of(m->file_clusters, row);
        agent_cluster_t *cl;

        if (!row->token) {
            AGENT_ERROR("cluster %s (database): its token does not open with [secrets] key; "
                        "%s", row->name, at >= 0 ? "the file's settings are used"
                                                 : "not polled");
            continue;
        }
        if (at >= 0) {
            cl = &APR_ARRAY_IDX(list, at, agent_cluster_t);
            if (!same_url(cl->pve.url, row->url) || strcmp(cl->pve.token, row->token)
                || !same_text(cl->pve.ca_pem, row->ca_pem) || cl->pve.ca_file) {
                AGENT_INFO("[cluster %s]: the database's settings are used (changed with "
                           "the admin API)", cl->name);
            }
        }
        else {
            cl = apr_array_push(list);
            memset(cl, 0, sizeof(*cl));
            cl->name = apr_pstrdup(lp, row->name);
            cl->pve.connect_timeout_ms = 3000;
            cl->pve.timeout_ms = 10000;
            cl->pve.max_response = 64 << 20;
            cl->pve.max_handles = 16;
            ++extra;
        }
        cl->pve.url = apr_pstrdup(lp, row->url);
        cl->pve.token = apr_pstrdup(lp, row->token);
        cl->pve.ca_pem = row->ca_pem ? apr_pstrdup(lp, row->ca_pem) : NULL;
        cl->pve.ca_file = NULL;
        cl->client = NULL;
    }
    for (i = 0; i < list->nelts; ++i) {
        agent_cluster_t *cl = &APR_ARRAY_IDX(list, i, agent_cluster_t);

        if (!(cl->client = client_of(c->clusters, cl))
            && ospab_pve_create(lp, &cl->pve, &cl->client) != APR_SUCCESS) {
            AGENT_ERROR("[cluster %s]: cannot make the Proxmox client; keeping the clusters "
                        "as they were", cl->name);
            apr_pool_destroy(lp);
            return;
        }
    }
    c->clusters = list;
    agent_monitor_clusters_changed(m, c);
    m->clusters_stamp = apr_pstrdup(m->pool, stamp);
    AGENT_INFO("clusters: %d polled (%d from the config file, %d more from the database)",
               list->nelts, m->file_clusters->nelts, extra);
}
