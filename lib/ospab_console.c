/* ospab core: one-time console tokens (ospab_console.h). */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "ospab_console.h"
#include "ospab_util.h"

/* 256 bits: as hard to guess as the refresh tokens */
#define TOKEN_BYTES 32

static const char *const kinds[] = { "terminal", "vnc" };

apr_status_t ospab_console_issue(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                 const char *user_id, const char *vps_id,
                                 ospab_console_kind_e kind, const char **token)
{
    const char *t = ospab_random_token(p, TOKEN_BYTES);
    const char *at = ospab_time_db(p, now);
    const char *args[6];
    apr_status_t rv;

    *token = NULL;
    /* yesterday's are of no use to anyone: they go with the next issue */
    args[0] = ospab_time_db(p, now - apr_time_from_sec(86400));
    if ((rv = ospab_db_exec(db, p, "ospab_console_purge", 1, args, NULL)) != APR_SUCCESS) {
        return rv;
    }
    args[0] = ospab_sha256_hex(p, t, strlen(t));
    args[1] = user_id;
    args[2] = vps_id;
    args[3] = kinds[kind];
    args[4] = ospab_time_db(p, now + OSPAB_CONSOLE_TOKEN_TTL);
    args[5] = at;
    if ((rv = ospab_db_exec(db, p, "ospab_console_insert", 6, args, NULL)) == APR_SUCCESS) {
        *token = t;
    }
    return rv;
}

int ospab_console_redeem(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *token,
                         ospab_console_grant_t *g)
{
    const char *at = ospab_time_db(p, now);
    const char *hash, *args[3];
    ospab_row_t row = NULL;
    int n = 0;

    memset(g, 0, sizeof(*g));
    if (!token || strlen(token) < 40 || strlen(token) > 64) {
        return 0;
    }
    hash = ospab_sha256_hex(p, token, strlen(token));
    args[0] = at;
    args[1] = hash;
    args[2] = at;
    if (ospab_db_exec(db, p, "ospab_console_use", 3, args, &n) != APR_SUCCESS) {
        return -1;
    }
    if (n != 1) {
        return 0;
    }
    if (ospab_db_select_one(db, p, "ospab_console_get", 1, &hash, &row) != APR_SUCCESS
        || !row) {
        return -1;
    }
    g->user_id = row[0];
    g->vps_id = row[1];
    g->kind = row[2] && !strcmp(row[2], "vnc") ? OSPAB_CONSOLE_VNC : OSPAB_CONSOLE_TERMINAL;
    return 1;
}

const char *ospab_console_panel_base(apr_pool_t *p, const char *url, const char **base)
{
    const char *c, *host = NULL;
    apr_size_t len;

    *base = NULL;
    if (!url || !*url) {
        return "must be a path such as /panel/ or an http(s):// URL";
    }
    for (c = url; *c; ++c) {
        if (apr_isspace(*c) || apr_iscntrl(*c)) {
            return "must not contain white space";
        }
        if (*c == '?' || *c == '#') {
            /* the console page's token goes in the fragment the panel adds */
            return "must not contain '?' or '#'";
        }
    }
    if (!strncmp(url, "https://", 8)) {
        host = url + 8;
    }
    else if (!strncmp(url, "http://", 7)) {
        host = url + 7;
    }
    if (host) {
        if (!*host || *host == '/' || *host == ':' || *host == '@') {
            return "must name a host: http(s)://host[:port][/path]";
        }
    }
    else if (url[0] != '/' || url[1] == '/') {
        /* "//host/" would be a URL without a scheme, "panel/" relative to nothing */
        return "must be a path starting with a single '/' (e.g. /panel/) or an http:// or "
               "https:// URL";
    }
    len = strlen(url);
    *base = url[len - 1] == '/' ? apr_pstrdup(p, url) : apr_pstrcat(p, url, "/", NULL);
    return NULL;
}
