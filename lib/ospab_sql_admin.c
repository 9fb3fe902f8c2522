/* ospab core: the statements of the admin API (OSPAB_SQL_ADMIN: lib/ospab_admin.c), which
 * Apache and ospab-admin prepare. Same rules as ospab_sql.c: parameters are text ("%s"),
 * timestamps come from the application, no dialect functions. An optional filter is
 * "(%s IS NULL OR column = %s)" with the value given twice (NULL: no filter); LIMIT is a
 * constant (one row more than OSPAB_PAGE_MAX: the page is cut in C, the extra row says
 * that another page follows); LIKE patterns are escaped by the application with '!'
 * (ospab_admin_like), never a backslash, which MariaDB would read inside the literal. */
#include <stddef.h>

#include "ospab_db.h"

#define USER_COLS "id, email, name, role, enabled, created_at, updated_at"
#define TARIFF_COLS "id, name, price, cores, memory, disk, cluster_id, enabled, created_at, " \
    "updated_at"
#define OS_COLS "id, name, type, template, kind, enabled, created_at, updated_at"
#define AUDIT_COLS "id, actor_type, actor_id, action, target_type, target_id, details, " \
                   "remote_addr, created_at"
#define ALERT_COLS "id, vps_id, type, level, message, value, state, opened_at, cleared_at, " \
                   "last_notified_at"
/* never body_text: an e-mail's text may hold a customer's data (or a password reset) */
#define MAIL_COLS "id, to_addr, subject, template, state, attempts, next_attempt_at, " \
                  "last_error, created_at, sent_at"
/* never payload: what the billing site is told is its business */
#define HOOK_COLS "id, event, state, attempts, next_attempt_at, last_status, last_error, " \
                  "created_at, delivered_at"

const ospab_sql_t ospab_sql_admin[] = {
    /* users: substring of e-mail or name (%1 the pattern, given three times), role,
     * enabled, after id */
    { "ospab_admin_users",
      "SELECT " USER_COLS " FROM users WHERE (%s IS NULL OR email LIKE %s ESCAPE '!' "
      "OR name LIKE %s ESCAPE '!') AND (%s IS NULL OR role = %s) "
      "AND (%s IS NULL OR enabled = %s) AND id > %s ORDER BY id LIMIT 201" },
    { "ospab_admin_user_enable",
      "UPDATE users SET enabled = %s, updated_at = %s WHERE id = %s" },
    /* every login of a user ends (ospab_session_revoke_user) */
    { "ospab_rt_revoke_user",
      "UPDATE refresh_tokens SET revoked_at = %s WHERE user_id = %s AND revoked_at IS NULL" },
    /* tariffs */
    { "ospab_admin_tariffs", "SELECT " TARIFF_COLS " FROM tariffs ORDER BY id" },
    { "ospab_admin_tariff_get", "SELECT " TARIFF_COLS " FROM tariffs WHERE id = %s" },
    { "ospab_admin_tariff_insert",
      "INSERT INTO tariffs (name, price, cores, memory, disk, cluster_id, enabled, "
      "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, NULLIF(%s, '0'), %s, %s, %s)" },
    /* a partial update in one statement: NULL keeps the column (none of them is nullable),
     * so two admins changing different fields at once both win */
    { "ospab_admin_tariff_update",
      "UPDATE tariffs SET name = COALESCE(%s, name), price = COALESCE(%s, price), "
      "cores = COALESCE(%s, cores), memory = COALESCE(%s, memory), "
      "disk = COALESCE(%s, disk), "
      /* cluster_id may be cleared: 0 or null means any cluster, so absent (NULL) keeps it */
      "cluster_id = NULLIF(COALESCE(%s, COALESCE(cluster_id, '0')), '0'), "
      "enabled = COALESCE(%s, enabled), updated_at = %s WHERE id = %s" },
    { "ospab_admin_tariff_delete", "DELETE FROM tariffs WHERE id = %s" },
    { "ospab_admin_tariff_used", "SELECT COUNT(*) FROM vps WHERE tariff_id = %s" },
    /* OS templates */
    { "ospab_admin_os_list", "SELECT " OS_COLS " FROM os_templates ORDER BY id" },
    { "ospab_admin_os_get", "SELECT " OS_COLS " FROM os_templates WHERE id = %s" },
    { "ospab_admin_os_insert",
      "INSERT INTO os_templates (name, type, template, kind, enabled, created_at, updated_at) "
      "VALUES (%s, %s, %s, %s, %s, %s, %s)" },
    { "ospab_admin_os_update",
      "UPDATE os_templates SET name = COALESCE(%s, name), type = COALESCE(%s, type), "
      "template = COALESCE(%s, template), kind = COALESCE(%s, kind), "
      "enabled = COALESCE(%s, enabled), updated_at = %s WHERE id = %s" },
    { "ospab_admin_os_delete", "DELETE FROM os_templates WHERE id = %s" },
    { "ospab_admin_os_used", "SELECT COUNT(*) FROM vps WHERE os_id = %s" },
    /* the audit trail newest first by time: ids are not in time order on Galera, so the
     * cursor carries both (created_at, id) and the id only breaks ties. Filters: actor
     * type, actor id, a server (target vps), action exact, action prefix (LIKE), since,
     * until, then the cursor */
    { "ospab_admin_audit",
      "SELECT " AUDIT_COLS " FROM audit_log WHERE (%s IS NULL OR actor_type = %s) "
      "AND (%s IS NULL OR actor_id = %s) "
      "AND (%s IS NULL OR (target_type = 'vps' AND target_id = %s)) "
      "AND (%s IS NULL OR action = %s) AND (%s IS NULL OR action LIKE %s ESCAPE '!') "
      "AND (%s IS NULL OR created_at >= %s) AND (%s IS NULL OR created_at <= %s) "
      "AND (%s IS NULL OR created_at < %s OR (created_at = %s AND id < %s)) "
      "ORDER BY created_at DESC, id DESC LIMIT 201" },
    /* servers: user, node, status, after id (the sync API's record's columns) */
    { "ospab_admin_servers",
      "SELECT id, external_id, name, status, ip_address, cpu, ram, disk, os, user_id, "
      "hypervisor, node, vmid, kind, tariff_id, os_id, created_at, updated_at, binding_note "
      "FROM vps WHERE (%s IS NULL OR user_id = %s) AND (%s IS NULL OR node = %s) "
      "AND (%s IS NULL OR status = %s) AND id > %s ORDER BY id LIMIT 201" },
    /* alerts: state, server, after id */
    { "ospab_admin_alerts",
      "SELECT " ALERT_COLS " FROM alerts WHERE (%s IS NULL OR state = %s) "
      "AND (%s IS NULL OR vps_id = %s) AND id > %s ORDER BY id LIMIT 201" },
    /* the outboxes: state, after id; the event log's internal rows are not deliveries */
    { "ospab_admin_mail_list",
      "SELECT " MAIL_COLS " FROM email_outbox WHERE (%s IS NULL OR state = %s) AND id > %s "
      "ORDER BY id LIMIT 201" },
    { "ospab_admin_hook_list",
      "SELECT " HOOK_COLS " FROM webhook_outbox WHERE state <> 'internal' "
      "AND (%s IS NULL OR state = %s) AND id > %s ORDER BY id LIMIT 201" },
    { "ospab_admin_mail_get", "SELECT " MAIL_COLS " FROM email_outbox WHERE id = %s" },
    { "ospab_admin_hook_get",
      "SELECT " HOOK_COLS " FROM webhook_outbox WHERE id = %s AND state <> 'internal'" },
    /* again from the start: due now, attempts counted anew. Never a row a sender holds
     * ('sending': its later updates name the lease in next_attempt_at) nor one that went */
    { "ospab_admin_mail_retry",
      "UPDATE email_outbox SET state = 'pending', attempts = 0, next_attempt_at = %s "
      "WHERE id = %s AND state IN ('failed', 'pending')" },
    { "ospab_admin_hook_retry",
      "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = %s "
      "WHERE id = %s AND state IN ('failed', 'pending')" },
    { NULL, NULL }
};
