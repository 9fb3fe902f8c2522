/* ospab core: every SQL statement, by label. Portable between MySQL/MariaDB and SQLite:
 * parameters are text ("%s"), timestamps come from the application, no dialect functions. */
#include <stddef.h>

#include "ospab_db.h"

/* metrics_latest rows for the agent (OSPAB_METRICS_BATCH = 50 rows of 11 values) */
#define METRICS_COLS "vps_id, status, cpu, mem, maxmem, disk, maxdisk, netin, netout, " \
                     "uptime, sampled_at"
#define METRICS_ROW "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
#define METRICS_ROWS10 METRICS_ROW ", " METRICS_ROW ", " METRICS_ROW ", " METRICS_ROW ", " \
                       METRICS_ROW ", " METRICS_ROW ", " METRICS_ROW ", " METRICS_ROW ", " \
                       METRICS_ROW ", " METRICS_ROW
#define METRICS_ROWS50 METRICS_ROWS10 ", " METRICS_ROWS10 ", " METRICS_ROWS10 ", " \
                       METRICS_ROWS10 ", " METRICS_ROWS10

/* the fields of ospab_vps_fields in order, then binding_note (OSPAB_VPS_BINDING_NOTE) */
#define VPS_COLS "id, external_id, name, status, ip_address, cpu, ram, disk, os, user_id, " \
                 "hypervisor, node, vmid, kind, tariff_id, os_id, created_at, updated_at, " \
                 "binding_note"
/* records the billing site synced for Proxmox without a node or vmid, in a state the
 * agent may link them to their guest in (docs/agent.md, "Adoption"; not the panel's own
 * failed creates, 'error', nor records on their way out) */
#define VPS_UNBOUND "hypervisor = 'proxmox' AND (node IS NULL OR vmid IS NULL) " \
                    "AND status IN ('creating', 'running', 'stopped', 'suspended')"
#define USER_COLS "id, email, name, role, enabled, created_at, updated_at"
/* the server view of seed 003: vps with its OS template and tariff */
#define SERVER_COLS "v.id, v.user_id, v.tariff_id, v.os_id, v.status, v.vmid, v.ip_address, " \
                    "v.created_at, v.updated_at, v.name, o.id, o.name, o.type, t.id, t.name, " \
                    "t.price, v.os, v.cpu, v.ram, v.disk FROM vps v " \
                    "LEFT JOIN os_templates o ON o.id = v.os_id " \
                    "LEFT JOIN tariffs t ON t.id = v.tariff_id"

const ospab_sql_t ospab_sql_statements[] = {
    /* vps */
    { "ospab_vps_get", "SELECT " VPS_COLS " FROM vps WHERE id = %s" },
    { "ospab_vps_get_ext", "SELECT " VPS_COLS " FROM vps WHERE external_id = %s" },
    { "ospab_vps_get_node_vmid", "SELECT id FROM vps WHERE node = %s AND vmid = %s" },
    { "ospab_vps_insert",
      "INSERT INTO vps (external_id, name, status, ip_address, cpu, ram, disk, os, user_id, "
      "hypervisor, node, vmid, kind, tariff_id, os_id, created_at, updated_at) "
      "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)" },
    { "ospab_vps_update",
      "UPDATE vps SET external_id = %s, name = %s, status = %s, ip_address = %s, cpu = %s, "
      "ram = %s, disk = %s, os = %s, user_id = %s, hypervisor = %s, node = %s, vmid = %s, "
      "kind = %s, tariff_id = %s, os_id = %s, updated_at = %s WHERE id = %s" },
    /* a write that changes nothing: takes the row lock (MySQL) or the write lock (SQLite)
     * before the transaction reads anything */
    { "ospab_vps_lock", "UPDATE vps SET updated_at = updated_at WHERE id = %s" },
    /* a sync update that bound the record (or moved it off Proxmox) ends the agent's note */
    { "ospab_vps_clear_note",
      "UPDATE vps SET binding_note = NULL WHERE id = %s AND binding_note IS NOT NULL "
      "AND (hypervisor <> 'proxmox' OR (node IS NOT NULL AND vmid IS NOT NULL))" },
    { "ospab_vps_delete", "DELETE FROM vps WHERE id = %s" },
    { "ospab_vps_delete_metrics", "DELETE FROM metrics_latest WHERE vps_id = %s" },
    { "ospab_vps_delete_alerts", "DELETE FROM alerts WHERE vps_id = %s" },
    { "ospab_vps_detach_tasks", "UPDATE tasks SET vps_id = NULL WHERE vps_id = %s" },
    { "ospab_vps_count_user", "SELECT COUNT(*) FROM vps WHERE user_id = %s" },
    /* references */
    { "ospab_user_exists", "SELECT id FROM users WHERE id = %s" },
    { "ospab_tariff_exists", "SELECT id FROM tariffs WHERE id = %s" },
    { "ospab_os_exists", "SELECT id FROM os_templates WHERE id = %s" },
    /* users */
    { "ospab_user_get", "SELECT " USER_COLS " FROM users WHERE id = %s" },
    /* by email_key (ospab_email_key): the address as it identifies an account */
    { "ospab_user_get_email", "SELECT id FROM users WHERE email_key = %s" },
    { "ospab_user_enabled", "SELECT enabled FROM users WHERE id = %s" },
    /* who a token names, as the database says now (ospab_session_principal): enabled,
     * role and, for a token of a panel login, whether that login is still live */
    { "ospab_principal", "SELECT enabled, role FROM users WHERE id = %s" },
    { "ospab_principal_sid",
      "SELECT u.enabled, u.role, EXISTS (SELECT 1 FROM refresh_tokens r "
      "WHERE r.family_id = %s AND r.user_id = u.id AND r.revoked_at IS NULL) "
      "FROM users u WHERE u.id = %s" },
    { "ospab_user_insert",
      "INSERT INTO users (email, email_key, name, role, password_hash, enabled, created_at, "
      "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)" },
    { "ospab_user_insert_id",
      "INSERT INTO users (id, email, email_key, name, role, password_hash, enabled, "
      "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)" },
    { "ospab_user_update",
      "UPDATE users SET email = %s, email_key = %s, name = %s, role = %s, enabled = %s, "
      "updated_at = %s WHERE id = %s" },
    /* ospab_users_rekey: every account's key computed again by the application */
    { "ospab_user_keys", "SELECT id, email, email_key FROM users" },
    { "ospab_user_set_key", "UPDATE users SET email_key = %s WHERE id = %s" },
    { "ospab_user_set_password",
      "UPDATE users SET password_hash = %s, updated_at = %s WHERE id = %s" },
    { "ospab_user_lock", "UPDATE users SET updated_at = updated_at WHERE id = %s" },
    { "ospab_user_delete", "DELETE FROM users WHERE id = %s" },
    { "ospab_user_delete_tokens", "DELETE FROM refresh_tokens WHERE user_id = %s" },
    /* audit */
    { "ospab_audit_insert",
      "INSERT INTO audit_log (actor_type, actor_id, action, target_type, target_id, details, "
      "remote_addr, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)" },
    /* idempotency */
    { "ospab_idem_get",
      "SELECT request_hash, status_code, response_body, created_at FROM idempotency_keys "
      "WHERE scope = %s AND idem_key = %s" },
    { "ospab_idem_insert",
      "INSERT INTO idempotency_keys (scope, idem_key, request_hash, created_at) "
      "VALUES (%s, %s, %s, %s)" },
    { "ospab_idem_complete",
      "UPDATE idempotency_keys SET status_code = %s, response_body = %s "
      "WHERE scope = %s AND idem_key = %s" },
    { "ospab_idem_forget",
      "DELETE FROM idempotency_keys WHERE scope = %s AND idem_key = %s AND created_at < %s" },
    /* sessions */
    { "ospab_auth_user_by_email",
      "SELECT id, email, name, role, enabled, password_hash FROM users WHERE email_key = %s" },
    { "ospab_rt_insert",
      "INSERT INTO refresh_tokens (user_id, family_id, token_hash, parent_id, expires_at, "
      "created_at, user_agent, ip) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)" },
    { "ospab_rt_get",
      "SELECT id, user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens "
      "WHERE token_hash = %s" },
    { "ospab_rt_use",
      "UPDATE refresh_tokens SET used_at = %s WHERE id = %s AND used_at IS NULL "
      "AND revoked_at IS NULL" },
    { "ospab_rt_revoke_family",
      "UPDATE refresh_tokens SET revoked_at = %s WHERE family_id = %s AND revoked_at IS NULL" },
    /* customer reads: keyset pages ("id > after"), one row more than the page to know
     * whether another follows; two page sizes keep LIMIT a constant */
    { "ospab_vps_page_user_51", "SELECT " VPS_COLS " FROM vps WHERE user_id = %s AND id > %s "
      "ORDER BY id LIMIT 51" },
    { "ospab_vps_page_user_201", "SELECT " VPS_COLS " FROM vps WHERE user_id = %s AND id > %s "
      "ORDER BY id LIMIT 201" },
    { "ospab_vps_page_all_51", "SELECT " VPS_COLS " FROM vps WHERE id > %s ORDER BY id LIMIT 51" },
    { "ospab_vps_page_all_201", "SELECT " VPS_COLS " FROM vps WHERE id > %s ORDER BY id LIMIT 201" },
    { "ospab_server_page_user_51", "SELECT " SERVER_COLS " WHERE v.user_id = %s AND v.id > %s "
      "ORDER BY v.id LIMIT 51" },
    { "ospab_server_page_user_201", "SELECT " SERVER_COLS " WHERE v.user_id = %s AND v.id > %s "
      "ORDER BY v.id LIMIT 201" },
    { "ospab_server_page_all_51", "SELECT " SERVER_COLS " WHERE v.id > %s ORDER BY v.id LIMIT 51" },
    { "ospab_server_page_all_201", "SELECT " SERVER_COLS " WHERE v.id > %s ORDER BY v.id "
      "LIMIT 201" },
    { "ospab_server_get", "SELECT " SERVER_COLS " WHERE v.id = %s" },
    { "ospab_tariff_list", "SELECT id, name, price, cores, memory, disk FROM tariffs "
      "WHERE enabled = 1 ORDER BY id" },
    { "ospab_os_list", "SELECT id, name, type, kind FROM os_templates WHERE enabled = 1 "
      "ORDER BY id" },
    /* server management: tasks, the one-operation-per-server rule, catalogue lookups */
    { "ospab_task_insert",
      "INSERT INTO tasks (vps_id, user_id, node, upid, action, status, created_at, updated_at) "
      "VALUES (%s, %s, %s, NULL, %s, 'queued', %s, %s)" },
    { "ospab_task_active",
      "SELECT id, upid, action, node, status, created_at, updated_at FROM tasks "
      "WHERE vps_id = %s AND status IN ('queued', 'running') ORDER BY id" },
    /* servers with tasks to follow (the agent) */
    { "ospab_task_active_servers",
      "SELECT DISTINCT vps_id FROM tasks WHERE status IN ('queued', 'running') "
      "AND vps_id IS NOT NULL ORDER BY vps_id" },
    /* takes a finished first half (restart's stop, create) for its second half: only one
     * follower wins; the row waits as queued without a UPID until the start is accepted */
    { "ospab_task_claim_start",
      "UPDATE tasks SET action = %s, upid = NULL, status = 'queued', updated_at = %s "
      "WHERE id = %s AND upid = %s AND status = 'running'" },
    /* a second half whose start was never recorded (its follower died): taken again */
    { "ospab_task_reclaim_start",
      "UPDATE tasks SET updated_at = %s WHERE id = %s AND upid IS NULL AND status = 'queued' "
      "AND updated_at = %s" },
    /* the first task of an operation: its UPID is the taskId the client got */
    { "ospab_task_start",
      "UPDATE tasks SET upid = %s, first_upid = %s, status = 'running', updated_at = %s "
      "WHERE id = %s" },
    /* the second half of a two-step operation (restart = stop, start; create = create,
     * start): the same row follows the next task under "<action>:start" */
    { "ospab_task_continue",
      "UPDATE tasks SET upid = %s, action = %s, status = 'running', updated_at = %s "
      "WHERE id = %s" },
    { "ospab_vps_clear_vmid", "UPDATE vps SET vmid = NULL, updated_at = %s WHERE id = %s" },
    { "ospab_task_finish",
      "UPDATE tasks SET status = %s, exitstatus = %s, error = %s, updated_at = %s, "
      "finished_at = %s WHERE id = %s AND status IN ('queued', 'running')" },
    { "ospab_task_list",
      "SELECT id, action, status, COALESCE(first_upid, upid), exitstatus, error, created_at, "
      "updated_at, finished_at FROM tasks WHERE vps_id = %s ORDER BY id DESC LIMIT 50" },
    { "ospab_vps_set_status", "UPDATE vps SET status = %s, updated_at = %s WHERE id = %s" },
    { "ospab_vps_set_ip", "UPDATE vps SET ip_address = %s, updated_at = %s WHERE id = %s" },
    { "ospab_vps_set_resources",
      "UPDATE vps SET cpu = %s, ram = %s, disk = %s, updated_at = %s WHERE id = %s" },
    { "ospab_vps_by_vmid", "SELECT " VPS_COLS " FROM vps WHERE vmid = %s AND user_id = %s" },
    { "ospab_vps_by_vmid_any", "SELECT " VPS_COLS " FROM vps WHERE vmid = %s ORDER BY id" },
    { "ospab_tariff_get", "SELECT id, name, price, cores, memory, disk FROM tariffs "
      "WHERE id = %s AND enabled = 1" },
    /* a server's own tariff bounds its resizes even after the tariff was withdrawn */
    { "ospab_tariff_get_any", "SELECT id, name, price, cores, memory, disk FROM tariffs "
      "WHERE id = %s" },
    /* the panel made the guest: its create got past vzcreate (lib/ospab_server.c) */
    { "ospab_vps_panel_made",
      "SELECT COUNT(*) FROM tasks WHERE vps_id = %s AND (action = 'create:start' "
      "OR (action = 'create' AND status = 'ok'))" },
    { "ospab_vps_set_tariff", "UPDATE vps SET tariff_id = %s, updated_at = %s WHERE id = %s" },
    { "ospab_os_get", "SELECT id, name, type, template, kind FROM os_templates "
      "WHERE id = %s AND enabled = 1" },
    /* events (lib/ospab_events.c) */
    { "ospab_event_insert",
      "INSERT INTO webhook_outbox (event, payload, state, attempts, next_attempt_at, "
      "created_at) VALUES (%s, %s, 'pending', 0, %s, %s)" },
    /* an event for the agents only (who may watch what changed), never a webhook */
    { "ospab_event_insert_internal",
      "INSERT INTO webhook_outbox (event, payload, state, attempts, next_attempt_at, "
      "created_at) VALUES (%s, %s, 'internal', 0, %s, %s)" },
    { "ospab_task_get",
      "SELECT id, vps_id, user_id, action, status, COALESCE(first_upid, upid), exitstatus, "
      "error FROM tasks WHERE id = %s" },
    { "ospab_vps_status_of", "SELECT status, user_id FROM vps WHERE id = %s" },
    /* outbox: e-mail and webhooks (lib/ospab_outbox.c, the agent's mailer and webhooks) */
    { "ospab_mail_insert",
      "INSERT INTO email_outbox (to_addr, subject, body_text, template, dedupe_key, state, "
      "attempts, next_attempt_at, created_at) VALUES (%s, %s, %s, %s, %s, 'pending', 0, %s, %s)" },
    { "ospab_mail_by_key", "SELECT id FROM email_outbox WHERE dedupe_key = %s" },
    /* a sender takes a row for one attempt: state sending, next_attempt_at = the end of its
     * lease, which is also its claim (the later updates name it); a row whose lease ran out
     * (its sender died) is due again */
    { "ospab_mail_due",
      "SELECT id FROM email_outbox WHERE state IN ('pending', 'sending') "
      "AND next_attempt_at <= %s ORDER BY next_attempt_at, id LIMIT 20" },
    { "ospab_mail_claim",
      "UPDATE email_outbox SET state = 'sending', attempts = attempts + 1, next_attempt_at = %s "
      "WHERE id = %s AND state IN ('pending', 'sending') AND next_attempt_at <= %s "
      "AND attempts < %s" },
    { "ospab_mail_get",
      "SELECT id, to_addr, subject, body_text, attempts, created_at FROM email_outbox "
      "WHERE id = %s" },
    { "ospab_mail_sent",
      "UPDATE email_outbox SET state = 'sent', sent_at = %s, last_error = NULL "
      "WHERE id = %s AND state = 'sending' AND next_attempt_at = %s" },
    { "ospab_mail_retry",
      "UPDATE email_outbox SET state = 'pending', next_attempt_at = %s, last_error = %s "
      "WHERE id = %s AND state = 'sending' AND next_attempt_at = %s" },
    { "ospab_mail_fail",
      "UPDATE email_outbox SET state = 'failed', last_error = %s "
      "WHERE id = %s AND state = 'sending' AND next_attempt_at = %s" },
    /* a lease that ran out after the last allowed attempt */
    { "ospab_mail_expire",
      "UPDATE email_outbox SET state = 'failed', last_error = %s WHERE state = 'sending' "
      "AND next_attempt_at <= %s AND attempts >= %s" },
    { "ospab_mail_prune",
      "DELETE FROM email_outbox WHERE state = 'sent' AND created_at < %s" },
    { "ospab_webhook_skip",
      "UPDATE webhook_outbox SET state = 'skipped', last_error = %s WHERE state = 'pending'" },
    { "ospab_webhook_due",
      "SELECT id FROM webhook_outbox WHERE state IN ('pending', 'sending') "
      "AND next_attempt_at <= %s ORDER BY id LIMIT 8" },
    { "ospab_webhook_claim",
      "UPDATE webhook_outbox SET state = 'sending', attempts = attempts + 1, "
      "next_attempt_at = %s WHERE id = %s AND state IN ('pending', 'sending') "
      "AND next_attempt_at <= %s AND attempts < %s" },
    { "ospab_webhook_get",
      "SELECT id, event, payload, attempts FROM webhook_outbox WHERE id = %s" },
    { "ospab_webhook_delivered",
      "UPDATE webhook_outbox SET state = 'delivered', delivered_at = %s, last_status = %s, "
      "last_error = NULL WHERE id = %s AND state = 'sending' AND next_attempt_at = %s" },
    { "ospab_webhook_retry",
      "UPDATE webhook_outbox SET state = 'pending', next_attempt_at = %s, last_status = %s, "
      "last_error = %s WHERE id = %s AND state = 'sending' AND next_attempt_at = %s" },
    { "ospab_webhook_fail",
      "UPDATE webhook_outbox SET state = 'failed', last_status = %s, last_error = %s "
      "WHERE id = %s AND state = 'sending' AND next_attempt_at = %s" },
    { "ospab_webhook_expire",
      "UPDATE webhook_outbox SET state = 'failed', last_error = %s WHERE state = 'sending' "
      "AND next_attempt_at <= %s AND attempts >= %s" },
    { "ospab_webhook_log",
      "INSERT INTO webhook_deliveries (webhook_id, attempt, http_status, error, duration_ms, "
      "created_at) VALUES (%s, %s, %s, %s, %s, %s)" },
    { "ospab_webhook_prune_log",
      "DELETE FROM webhook_deliveries WHERE webhook_id IN (SELECT id FROM webhook_outbox "
      "WHERE state IN ('delivered', 'skipped') AND created_at < %s)" },
    { "ospab_webhook_prune",
      "DELETE FROM webhook_outbox WHERE state IN ('delivered', 'skipped', 'internal') "
      "AND created_at < %s" },
    /* the agent's housekeeping: spent sessions and old replay records */
    { "ospab_rt_prune",
      "DELETE FROM refresh_tokens WHERE expires_at < %s OR revoked_at < %s" },
    { "ospab_idem_prune", "DELETE FROM idempotency_keys WHERE created_at < %s" },
    /* agent: monitor (monitor-agent/agent_monitor.c) */
    { "ospab_agent_vps_index",
      "SELECT id, user_id, name, status, node, vmid, kind FROM vps "
      "WHERE hypervisor = 'proxmox' AND node IS NOT NULL AND vmid IS NOT NULL" },
    { "ospab_agent_vps_one",
      "SELECT id, user_id, name, status, node, vmid, kind FROM vps "
      "WHERE id = %s AND hypervisor = 'proxmox' AND node IS NOT NULL AND vmid IS NOT NULL" },
    /* adoption (docs/agent.md): the unbound records, 500 a round (UNBOUND_BATCH in
     * agent_monitor.c) from where the last round stopped; the columns of
     * ospab_agent_vps_index, then the note */
    { "ospab_agent_vps_unbound",
      "SELECT id, user_id, name, status, node, vmid, kind, binding_note FROM vps "
      "WHERE " VPS_UNBOUND " AND id > %s ORDER BY id LIMIT 500" },
    /* unbound records sharing a name (also those beyond the round's batch) */
    { "ospab_agent_vps_unbound_named",
      "SELECT COUNT(*) FROM vps WHERE name = %s AND " VPS_UNBOUND },
    /* only while still unbound, still so named and in the state the agent read: with
     * several agents, or a sync update meanwhile, one change wins and the others find no
     * row; the unique (node, vmid) refuses a guest bound in between */
    { "ospab_agent_vps_adopt",
      "UPDATE vps SET node = %s, vmid = %s, kind = %s, status = %s, binding_note = NULL, "
      "updated_at = %s WHERE id = %s AND name = %s AND status = %s AND " VPS_UNBOUND },
    { "ospab_agent_vps_note",
      "UPDATE vps SET binding_note = %s WHERE id = %s AND " VPS_UNBOUND },
    /* REPLACE INTO: the same statement in MySQL and SQLite (delete + insert of the row);
     * the agent writes OSPAB_METRICS_BATCH rows per statement (one round trip to MariaDB
     * instead of 50) and the rest one by one */
    { "ospab_metrics_put",
      "REPLACE INTO metrics_latest (" METRICS_COLS ") VALUES " METRICS_ROW },
    { "ospab_metrics_put_batch",
      "REPLACE INTO metrics_latest (" METRICS_COLS ") VALUES " METRICS_ROWS50 },
    { "ospab_agent_alerts_open",
      "SELECT id, vps_id, type, level, value, message, opened_at, last_notified_at "
      "FROM alerts WHERE state = 'open'" },
    { "ospab_agent_alerts_open_of",
      "SELECT id, vps_id, type, level, value, message, opened_at, last_notified_at "
      "FROM alerts WHERE state = 'open' AND vps_id = %s ORDER BY id" },
    { "ospab_alert_insert",
      "INSERT INTO alerts (vps_id, type, level, message, value, state, opened_at, "
      "last_notified_at) VALUES (%s, %s, %s, %s, %s, 'open', %s, %s)" },
    { "ospab_alert_update",
      "UPDATE alerts SET level = %s, message = %s, value = %s, last_notified_at = %s "
      "WHERE id = %s AND state = 'open'" },
    { "ospab_alert_clear",
      "UPDATE alerts SET state = 'cleared', cleared_at = %s WHERE id = %s AND state = 'open'" },
    { "ospab_alert_last_notified",
      "SELECT MAX(last_notified_at) FROM alerts WHERE vps_id = %s AND type = %s" },
    { "ospab_agent_events_after",
      "SELECT id, event, payload FROM webhook_outbox WHERE id > %s ORDER BY id LIMIT 500" },
    { "ospab_agent_events_max", "SELECT MAX(id) FROM webhook_outbox" },
    /* per-cluster leases of the agents (002_agent_leases.sql, SPEC §9) */
    { "ospab_lease_renew",
      "UPDATE agent_leases SET owner = %s, expires_at = %s, updated_at = %s "
      "WHERE name = %s AND (owner = %s OR expires_at < %s)" },
    { "ospab_lease_insert",
      "INSERT INTO agent_leases (name, owner, expires_at, updated_at) VALUES (%s, %s, %s, %s)" },
    { "ospab_lease_get", "SELECT owner, expires_at FROM agent_leases WHERE name = %s" },
    /* the clusters some agent polls now (adoption notes need to have seen them all) */
    { "ospab_lease_live", "SELECT name, owner FROM agent_leases WHERE expires_at > %s" },
    { "ospab_lease_release",
      "UPDATE agent_leases SET expires_at = %s, updated_at = %s WHERE name = %s AND owner = %s" },
    /* health */
    { "ospab_ping", "SELECT COUNT(*) FROM schema_migrations" },
    { NULL, NULL }
};
