/* ospab core: the statements only ospab-agent runs (OSPAB_SQL_AGENT): its mailer and
 * webhook sender, housekeeping, the monitor's rounds and the cluster leases. Apache's
 * connections never prepare them. Same rules as ospab_sql.c. */
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

/* records the billing site synced for Proxmox without a node or vmid, in a state the
 * agent may link them to their guest in (docs/agent.md, "Adoption"; not the panel's own
 * failed creates, 'error', nor records on their way out) */
#define VPS_UNBOUND "hypervisor = 'proxmox' AND (node IS NULL OR vmid IS NULL) " \
                    "AND status IN ('creating', 'running', 'stopped', 'suspended')"

const ospab_sql_t ospab_sql_agent[] = {
    /* the registered nodes (009_nodes.sql) and their sample from a poll round, for
     * placement (lib/ospab_placement.c) */
    { "ospab_agent_nodes", "SELECT name, storage FROM nodes ORDER BY name" },
    { "ospab_node_sample",
      "UPDATE nodes SET status = %s, maxcpu = %s, maxmem = %s, mem = %s, maxdisk = %s, "
      "disk = %s, sampled_at = %s WHERE name = %s" },
    /* servers with tasks to follow (the agent; rows: agent_active_server_from_row) */
    { "ospab_task_active_servers",
      "SELECT DISTINCT vps_id FROM tasks WHERE status IN ('queued', 'running') "
      "AND vps_id IS NOT NULL ORDER BY vps_id" },
    /* a sender takes a row for one attempt: state sending, next_attempt_at = the end of its
     * lease, which is also its claim (the later updates name it); a row whose lease ran out
     * (its sender died) is due again */
    /* rows: due_id_from_row (monitor-agent/agent_mail.c) */
    { "ospab_mail_due",
      "SELECT id FROM email_outbox WHERE state IN ('pending', 'sending') "
      "AND next_attempt_at <= %s ORDER BY next_attempt_at, id LIMIT 20" },
    /* the queues' depth, for the agent's metrics */
    { "ospab_mail_queued",
      "SELECT COUNT(*) FROM email_outbox WHERE state IN ('pending', 'sending')" },
    { "ospab_webhook_queued",
      "SELECT COUNT(*) FROM webhook_outbox WHERE state IN ('pending', 'sending')" },
    { "ospab_mail_claim",
      "UPDATE email_outbox SET state = 'sending', attempts = attempts + 1, next_attempt_at = %s "
      "WHERE id = %s AND state IN ('pending', 'sending') AND next_attempt_at <= %s "
      "AND attempts < %s" },
    /* mail_from_row (agent_mail.c) */
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
    /* rows: due_id_from_row (agent_webhook.c) */
    { "ospab_webhook_due",
      "SELECT id FROM webhook_outbox WHERE state IN ('pending', 'sending') "
      "AND next_attempt_at <= %s ORDER BY id LIMIT 8" },
    { "ospab_webhook_claim",
      "UPDATE webhook_outbox SET state = 'sending', attempts = attempts + 1, "
      "next_attempt_at = %s WHERE id = %s AND state IN ('pending', 'sending') "
      "AND next_attempt_at <= %s AND attempts < %s" },
    /* webhook_from_row (agent_webhook.c) */
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
    /* agent: monitor (monitor-agent/agent_poll.c, agent_alerts.c, agent_live.c, ...);
     * rows of _index and _one: agent_vps_from_row (agent_rows.c) */
    { "ospab_agent_vps_index",
      "SELECT id, user_id, name, status, node, vmid, kind FROM vps "
      "WHERE hypervisor = 'proxmox' AND node IS NOT NULL AND vmid IS NOT NULL" },
    { "ospab_agent_vps_one",
      "SELECT id, user_id, name, status, node, vmid, kind FROM vps "
      "WHERE id = %s AND hypervisor = 'proxmox' AND node IS NOT NULL AND vmid IS NOT NULL" },
    /* adoption (docs/agent.md): the unbound records, 500 a round (UNBOUND_BATCH in
     * agent_adopt.c) from where the last round stopped; the columns of
     * ospab_agent_vps_index, then the note (rows: agent_vps_unbound_from_row) */
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
    /* rows of both: alert_from_row (agent_alerts.c) */
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
    /* last_notified_from_row (agent_alerts.c) */
    { "ospab_alert_last_notified",
      "SELECT MAX(last_notified_at) FROM alerts WHERE vps_id = %s AND type = %s" },
    /* event_from_row, max_id_from_row (agent_events.c) */
    { "ospab_agent_events_after",
      "SELECT id, event, payload FROM webhook_outbox WHERE id > %s ORDER BY id LIMIT 500" },
    { "ospab_agent_events_max", "SELECT MAX(id) FROM webhook_outbox" },
    /* rows made lately that got an id below the window read again: on Galera another
     * node's row that committed after many newer ones (006_galera.sql's index) */
    { "ospab_agent_events_late",
      "SELECT id, event, payload FROM webhook_outbox WHERE created_at >= %s AND id <= %s "
      "ORDER BY id LIMIT 500" },
    /* per-cluster leases (002_agent_leases.sql): one agent polls a cluster at a time, and
     * the clusters of an agent that stopped renewing move on to the others */
    /* the fencing token (006_galera.sql) goes up when the lease changes hands; MariaDB
     * assigns left to right, so fence is computed from the owner before the change */
    { "ospab_lease_renew",
      "UPDATE agent_leases SET fence = fence + (owner <> %s), owner = %s, expires_at = %s, "
      "updated_at = %s WHERE name = %s AND (owner = %s OR expires_at < %s)" },
    { "ospab_lease_insert",
      "INSERT INTO agent_leases (name, owner, expires_at, updated_at, fence) "
      "VALUES (%s, %s, %s, %s, 1)" },
    /* lease_from_get_row (agent_leases.c) */
    { "ospab_lease_get", "SELECT owner, expires_at, fence FROM agent_leases WHERE name = %s" },
    /* in the holder's writing transactions: 1 row while the lease is still its own with
     * the same token; it changes the row, so Galera orders it against a takeover made on
     * another node (certification) as the row lock does on one server */
    { "ospab_lease_fence",
      "UPDATE agent_leases SET lock_seq = lock_seq + 1 "
      "WHERE name = %s AND owner = %s AND fence = %s AND expires_at > %s" },
    /* the clusters some agent polls now (adoption notes need to have seen them all);
     * lease_from_live_row */
    { "ospab_lease_live", "SELECT name, owner FROM agent_leases WHERE expires_at > %s" },
    { "ospab_lease_release",
      "UPDATE agent_leases SET expires_at = %s, updated_at = %s WHERE name = %s AND owner = %s" },
    { NULL, NULL }
};
