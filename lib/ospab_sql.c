/* ospab core: the SQL statements of the library's operations, by label: the set every
 * program prepares (OSPAB_SQL_API; the agent's own rounds are in ospab_sql_agent.c).
 * Portable between MySQL/MariaDB and SQLite: parameters are text ("%s"), timestamps come
 * from the application, no dialect functions. */
#include <stddef.h>

#include "ospab_db.h"

/* the fields of ospab_vps_fields in order, then binding_note (OSPAB_VPS_BINDING_NOTE) */
#define VPS_COLS "id, external_id, name, status, ip_address, cpu, ram, disk, os, user_id, " \
                 "hypervisor, node, vmid, kind, tariff_id, os_id, created_at, updated_at, " \
                 "binding_note"
#define USER_COLS "id, email, name, role, enabled, created_at, updated_at"
/* the server view of seed 003: vps with its OS template and tariff */
#define SERVER_SELECT "v.id, v.user_id, v.tariff_id, v.os_id, v.status, v.vmid, " \
                      "v.ip_address, v.created_at, v.updated_at, v.name, o.id, o.name, o.type, " \
                      "t.id, t.name, t.price, v.os, v.cpu, v.ram, v.disk"
#define SERVER_JOINS "LEFT JOIN os_templates o ON o.id = v.os_id " \
                     "LEFT JOIN tariffs t ON t.id = v.tariff_id"
#define SERVER_COLS SERVER_SELECT " FROM vps v " SERVER_JOINS
/* a customer's list and who the token names, in one round trip (ospab_session_list): the
 * caller's row (enabled, role, whether the login of family %1 is live; OSPAB_PRINCIPAL_COLS)
 * on every row, then the page's rows after id %2 of user %3; none for a user without any
 * or an unknown one (an inner join: MariaDB sorts an outer join's rows in a temporary
 * table) */
#define ME_COLS "u.enabled, u.role, EXISTS (SELECT 1 FROM refresh_tokens r " \
                "WHERE r.family_id = %s AND r.user_id = u.id AND r.revoked_at IS NULL), "
#define ME_VPS_COLS "v.id, v.external_id, v.name, v.status, v.ip_address, v.cpu, v.ram, " \
                    "v.disk, v.os, v.user_id, v.hypervisor, v.node, v.vmid, v.kind, " \
                    "v.tariff_id, v.os_id, v.created_at, v.updated_at, v.binding_note"
#define ME_JOIN "FROM users u JOIN vps v ON v.user_id = u.id AND v.id > %s "
#define ME_WHERE "WHERE u.id = %s ORDER BY v.id LIMIT "

/* 32 rows of ip_addresses (OSPAB_IPADDR_BATCH) */
#define IPADDR_ROWS8 "(%s, %s, %s), (%s, %s, %s), (%s, %s, %s), (%s, %s, %s), " \
                     "(%s, %s, %s), (%s, %s, %s), (%s, %s, %s), (%s, %s, %s)"
#define IPADDR_ROWS32 IPADDR_ROWS8 ", " IPADDR_ROWS8 ", " IPADDR_ROWS8 ", " IPADDR_ROWS8

/* a node with what it was given (ospab_placement.c's row); the admin API's adds accepts */
#define NODE_PLACE_COLS "n.id, n.name, n.storage, n.bridge, n.cpu_ratio, n.mem_ratio, " \
    "n.disk_ratio, n.status, n.maxcpu, n.maxmem, n.mem, n.maxdisk, n.disk, n.sampled_at, " \
    "(SELECT COALESCE(SUM(v.cpu), 0) FROM vps v WHERE v.node = n.name), " \
    "(SELECT COALESCE(SUM(v.ram), 0) FROM vps v WHERE v.node = n.name), " \
    "(SELECT COALESCE(SUM(v.disk), 0) FROM vps v WHERE v.node = n.name), " \
    "(SELECT COALESCE(SUM(v.ram), 0) FROM vps v WHERE v.node = n.name " \
    "AND v.created_at > n.sampled_at), n.cluster_id, " \
    "(SELECT c.enabled FROM clusters c WHERE c.id = n.cluster_id)"
#define NODE_PLACE NODE_PLACE_COLS " FROM nodes n"
#define IPPOOL_COLS "p.id, p.name, p.family, p.node, p.bridge, p.first_address, " \
    "p.last_address, p.prefix, p.gateway, p.dns, p.cooldown, p.enabled, p.created_at, " \
    "p.updated_at, (SELECT COUNT(*) FROM ip_addresses a WHERE a.pool_id = p.id), " \
    "(SELECT COUNT(*) FROM ip_addresses a WHERE a.pool_id = p.id AND a.vps_id IS NOT NULL), " \
    "p.cluster_id FROM ip_pools p"
#define CLUSTER_ADMIN "c.id, c.name, c.api_url, c.token_id, c.ca_pem, c.enabled, " \
    "c.created_at, c.updated_at, (SELECT COUNT(*) FROM nodes n WHERE n.cluster_id = c.id) " \
    "FROM clusters c"
#define NODE_PLACE_ACCEPTS NODE_PLACE_COLS ", n.accepts, n.ssh_host, n.ssh_host_key FROM nodes n"

const ospab_sql_t ospab_sql_api[] = {
    /* vps */
    { "ospab_vps_get", "SELECT " VPS_COLS " FROM vps WHERE id = %s" },
    { "ospab_vps_get_ext", "SELECT " VPS_COLS " FROM vps WHERE external_id = %s" },
    { "ospab_vps_get_node_vmid", "SELECT id FROM vps WHERE node = %s AND vmid = %s" },
    { "ospab_vps_max_vmid", "SELECT MAX(vmid) FROM vps" },
    { "ospab_vps_insert",
      "INSERT INTO vps (external_id, name, status, ip_address, cpu, ram, disk, os, user_id, "
      "hypervisor, node, vmid, kind, tariff_id, os_id, created_at, updated_at) "
      "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)" },
    { "ospab_vps_update",
      "UPDATE vps SET external_id = %s, name = %s, status = %s, ip_address = %s, cpu = %s, "
      "ram = %s, disk = %s, os = %s, user_id = %s, hypervisor = %s, node = %s, vmid = %s, "
      "kind = %s, tariff_id = %s, os_id = %s, updated_at = %s WHERE id = %s" },
    /* takes the row lock (MySQL) or the write lock (SQLite) before the transaction reads
     * anything. It changes the row (lock_seq, 006_galera.sql): Galera certifies the rows a
     * transaction wrote, and an UPDATE that leaves a row as it was writes none, so two
     * nodes could otherwise each hold the "lock" at once */
    { "ospab_vps_lock", "UPDATE vps SET lock_seq = lock_seq + 1 WHERE id = %s" },
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
    /* as ospab_vps_lock */
    { "ospab_user_lock", "UPDATE users SET lock_seq = lock_seq + 1 WHERE id = %s" },
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
    { "ospab_vps_page_all_201",
      "SELECT " VPS_COLS " FROM vps WHERE id > %s ORDER BY id LIMIT 201" },
    { "ospab_server_page_user_51", "SELECT " SERVER_COLS " WHERE v.user_id = %s AND v.id > %s "
      "ORDER BY v.id LIMIT 51" },
    { "ospab_server_page_user_201", "SELECT " SERVER_COLS " WHERE v.user_id = %s AND v.id > %s "
      "ORDER BY v.id LIMIT 201" },
    { "ospab_vps_page_me_51", "SELECT " ME_COLS ME_VPS_COLS " " ME_JOIN ME_WHERE "51" },
    { "ospab_vps_page_me_201", "SELECT " ME_COLS ME_VPS_COLS " " ME_JOIN ME_WHERE "201" },
    { "ospab_server_page_me_51", "SELECT " ME_COLS SERVER_SELECT " " ME_JOIN SERVER_JOINS " "
      ME_WHERE "51" },
    { "ospab_server_page_me_201", "SELECT " ME_COLS SERVER_SELECT " " ME_JOIN SERVER_JOINS " "
      ME_WHERE "201" },
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
    /* what the later steps of a chained operation need (012_task_params.sql) */
    { "ospab_task_set_params", "UPDATE tasks SET params = %s WHERE id = %s" },
    { "ospab_task_params", "SELECT params FROM tasks WHERE id = %s" },
    /* one-time console tokens (lib/ospab_console.c, 013_console_tokens.sql) */
    { "ospab_console_purge", "DELETE FROM console_tokens WHERE expires_at < %s" },
    { "ospab_console_insert",
      "INSERT INTO console_tokens (token_hash, user_id, vps_id, kind, expires_at, created_at) "
      "VALUES (%s, %s, %s, %s, %s, %s)" },
    { "ospab_console_use",
      "UPDATE console_tokens SET used_at = %s WHERE token_hash = %s AND used_at IS NULL "
      "AND expires_at > %s" },
    { "ospab_console_get",
      "SELECT user_id, vps_id, kind FROM console_tokens WHERE token_hash = %s" },
    { "ospab_vps_clear_vmid", "UPDATE vps SET vmid = NULL, updated_at = %s WHERE id = %s" },
    { "ospab_task_finish",
      "UPDATE tasks SET status = %s, exitstatus = %s, error = %s, updated_at = %s, "
      "finished_at = %s, params = NULL WHERE id = %s AND status IN ('queued', 'running')" },
    /* newest first by time: ids are not in time order on Galera (each node hands out its
     * own, auto_increment_offset), so the id only breaks ties */
    { "ospab_task_list",
      "SELECT id, action, status, COALESCE(first_upid, upid), exitstatus, error, created_at, "
      "updated_at, finished_at FROM tasks WHERE vps_id = %s "
      "ORDER BY created_at DESC, id DESC LIMIT 50" },
    /* a suspended server keeps its status whatever its guest does (007_suspension.sql):
     * only suspending and unsuspending change it */
    { "ospab_vps_set_status",
      "UPDATE vps SET status = %s, updated_at = %s WHERE id = %s AND status <> 'suspended'" },
    /* suspension (lib/ospab_suspend.c): the state before it is kept for unsuspending */
    { "ospab_vps_suspend",
      "UPDATE vps SET suspended_status = status, status = 'suspended', updated_at = %s "
      "WHERE id = %s AND status <> 'suspended'" },
    { "ospab_vps_unsuspend",
      "UPDATE vps SET status = %s, suspended_status = NULL, updated_at = %s "
      "WHERE id = %s AND status = 'suspended'" },
    { "ospab_vps_suspended_status",
      "SELECT status, suspended_status, user_id FROM vps WHERE id = %s" },
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
      "SELECT COUNT(*) FROM tasks WHERE vps_id = %s AND (action IN ('create:config', "
      "'create:resize', 'create:start') OR (action = 'create' AND status = 'ok'))" },
    { "ospab_vps_set_os",
      "UPDATE vps SET os = %s, os_id = %s, updated_at = %s WHERE id = %s" },
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
    /* e-mail queued by the library's operations (lib/ospab_mail.c, lib/ospab_notify.c) */
    { "ospab_mail_insert",
      "INSERT INTO email_outbox (to_addr, subject, body_text, template, dedupe_key, state, "
      "attempts, next_attempt_at, created_at) VALUES (%s, %s, %s, %s, %s, 'pending', 0, %s, %s)" },
    { "ospab_mail_by_key", "SELECT id FROM email_outbox WHERE dedupe_key = %s" },
    /* placement (lib/ospab_placement.c, 009_nodes.sql): the nodes that take new servers,
     * their sample, what servers on them were given and, of memory, since the sample */
    { "ospab_nodes_count", "SELECT COUNT(*) FROM nodes" },
    { "ospab_nodes_place", "SELECT " NODE_PLACE " WHERE n.accepts = 1 ORDER BY n.id" },
    { "ospab_node_place_one", "SELECT " NODE_PLACE " WHERE n.id = %s" },
    { "ospab_node_lock", "UPDATE nodes SET lock_seq = lock_seq + 1 WHERE id = %s" },
    /* the admin API's nodes: the placement row and accepts */
    { "ospab_nodes_admin", "SELECT " NODE_PLACE_ACCEPTS " ORDER BY n.id" },
    { "ospab_node_admin_one", "SELECT " NODE_PLACE_ACCEPTS " WHERE n.id = %s" },
    /* the settings in ospab_placement.c's field order */
    { "ospab_node_settings",
      "SELECT name, storage, bridge, cpu_ratio, mem_ratio, disk_ratio, accepts, ssh_host, "
      "cluster_id, ssh_host_key FROM nodes WHERE id = %s" },
    { "ospab_node_insert",
      "INSERT INTO nodes (name, storage, bridge, cpu_ratio, mem_ratio, disk_ratio, accepts, "
      "ssh_host, cluster_id, ssh_host_key, created_at, updated_at) "
      "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)" },
    { "ospab_node_update",
      "UPDATE nodes SET name = %s, storage = %s, bridge = %s, cpu_ratio = %s, mem_ratio = %s, "
      "disk_ratio = %s, accepts = %s, ssh_host = %s, cluster_id = %s, ssh_host_key = %s, "
      "updated_at = %s WHERE id = %s" },
    { "ospab_cluster_exists", "SELECT id FROM clusters WHERE id = %s" },
    /* the cluster a tariff's servers are placed in (NULL: any) */
    { "ospab_tariff_cluster", "SELECT cluster_id FROM tariffs WHERE id = %s" },
    /* Proxmox clusters as data (lib/ospab_cluster.c, 010_clusters.sql); rows:
     * ospab_cluster.c's C_* columns */
    { "ospab_clusters_all",
      "SELECT id, name, api_url, token_id, token_secret, ca_pem, enabled, updated_at "
      "FROM clusters ORDER BY id" },
    { "ospab_cluster_row",
      "SELECT id, name, api_url, token_id, token_secret, ca_pem, enabled, updated_at "
      "FROM clusters WHERE id = %s" },
    { "ospab_clusters_stamp", "SELECT COUNT(*), MAX(updated_at) FROM clusters" },
    { "ospab_cluster_same", "SELECT id FROM clusters WHERE name = %s OR api_url = %s" },
    { "ospab_cluster_insert",
      "INSERT INTO clusters (name, api_url, token_id, token_secret, ca_pem, enabled, "
      "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)" },
    { "ospab_cluster_update",
      "UPDATE clusters SET name = %s, api_url = %s, token_id = %s, token_secret = %s, "
      "ca_pem = %s, enabled = %s, updated_at = %s WHERE id = %s" },
    { "ospab_cluster_users",
      "SELECT (SELECT COUNT(*) FROM nodes WHERE cluster_id = %s), "
      "(SELECT COUNT(*) FROM tariffs WHERE cluster_id = %s), "
      "(SELECT COUNT(*) FROM ip_pools WHERE cluster_id = %s)" },
    { "ospab_cluster_delete", "DELETE FROM clusters WHERE id = %s" },
    /* an imported cluster takes the nodes of none */
    { "ospab_nodes_claim", "UPDATE nodes SET cluster_id = %s WHERE cluster_id IS NULL" },
    { "ospab_node_clusters", "SELECT name, cluster_id FROM nodes" },
    { "ospab_node_cluster", "SELECT cluster_id FROM nodes WHERE name = %s" },
    /* the admin API's view: never the secret */
    { "ospab_clusters_admin", "SELECT " CLUSTER_ADMIN " ORDER BY c.id" },
    { "ospab_cluster_admin_one", "SELECT " CLUSTER_ADMIN " WHERE c.id = %s" },
    /* a server's node's own sshd (root password resets) */
    { "ospab_node_ssh_host", "SELECT ssh_host, ssh_host_key FROM nodes WHERE name = %s" },
    { "ospab_node_delete", "DELETE FROM nodes WHERE id = %s" },
    /* IP pools (lib/ospab_ippool.c, 008_ip_pools.sql) */
    { "ospab_ippool_insert",
      "INSERT INTO ip_pools (name, family, node, bridge, first_address, last_address, prefix, "
      "gateway, dns, cooldown, enabled, created_at, updated_at, cluster_id) "
      "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s, %s)" },
    { "ospab_ippool_row_get",
      "SELECT id, name, first_address, prefix, gateway, dns, cooldown, enabled FROM ip_pools "
      "WHERE id = %s" },
    { "ospab_ippool_update",
      "UPDATE ip_pools SET name = %s, gateway = %s, dns = %s, cooldown = %s, enabled = %s, "
      "updated_at = %s WHERE id = %s" },
    { "ospab_ippool_held",
      "SELECT COUNT(*) FROM ip_addresses WHERE pool_id = %s AND vps_id IS NOT NULL" },
    { "ospab_ipaddr_delete_pool", "DELETE FROM ip_addresses WHERE pool_id = %s" },
    { "ospab_ippool_delete", "DELETE FROM ip_pools WHERE id = %s" },
    /* rows: ospab_ippool.c's pool_row */
    { "ospab_ippool_list", "SELECT " IPPOOL_COLS " ORDER BY p.id" },
    { "ospab_ippool_one", "SELECT " IPPOOL_COLS " WHERE p.id = %s" },
    { "ospab_ippool_cooling",
      "SELECT COUNT(*) FROM ip_addresses WHERE pool_id = %s AND vps_id IS NULL "
      "AND released_at > %s" },
    /* the pools that serve a new guest on node %2 and bridge %1: IPv4 first, a node's own
     * before those of every node */
    { "ospab_ippool_for",
      "SELECT id FROM ip_pools WHERE enabled = 1 AND bridge = %s "
      "AND (node = %s OR node IS NULL) AND (cluster_id IS NULL "
      "OR cluster_id = (SELECT n.cluster_id FROM nodes n WHERE n.name = %s)) "
      "ORDER BY family, CASE WHEN node IS NOT NULL THEN 0 WHEN cluster_id IS NOT NULL THEN 1 "
      "ELSE 2 END, id" },
    /* taken first in a server's create transaction: creates on one pool queue here, and
     * what they read afterwards is what the one before them committed */
    { "ospab_ippool_lock", "UPDATE ip_pools SET lock_seq = lock_seq + 1 WHERE id = %s" },
    { "ospab_ippool_get",
      "SELECT id, name, family, prefix, gateway, dns, cooldown FROM ip_pools WHERE id = %s" },
    { "ospab_ipaddr_insert",
      "INSERT INTO ip_addresses (pool_id, address, seq) VALUES (%s, %s, %s)" },
    { "ospab_ipaddr_insert_batch",
      "INSERT INTO ip_addresses (pool_id, address, seq) VALUES " IPADDR_ROWS32 },
    /* the first free address of pool %1 that has rested since %2 */
    { "ospab_ipaddr_free",
      "SELECT id, address FROM ip_addresses WHERE pool_id = %s AND vps_id IS NULL "
      "AND (released_at IS NULL OR released_at <= %s) ORDER BY seq LIMIT 1" },
    { "ospab_ipaddr_take",
      "UPDATE ip_addresses SET vps_id = %s, taken_at = %s, released_at = NULL "
      "WHERE id = %s AND vps_id IS NULL" },
    { "ospab_ipaddr_release",
      "UPDATE ip_addresses SET vps_id = NULL, taken_at = NULL, released_at = %s "
      "WHERE vps_id = %s" },
    { "ospab_ipaddr_forget",
      "UPDATE ip_addresses SET vps_id = NULL, taken_at = NULL, released_at = NULL "
      "WHERE vps_id = %s" },
    /* customers' SSH keys (lib/ospab_sshkeys.c, 011_ssh_keys.sql); rows: its key_row.
     * Oldest first by time: ids are not in time order on Galera */
    { "ospab_sshkey_list",
      "SELECT id, name, public_key, fingerprint, created_at FROM ssh_keys WHERE user_id = %s "
      "ORDER BY created_at, id" },
    { "ospab_sshkey_owned",
      "SELECT id, name, public_key, fingerprint, created_at FROM ssh_keys "
      "WHERE id = %s AND user_id = %s" },
    { "ospab_sshkey_same",
      "SELECT id, name, public_key, fingerprint, created_at FROM ssh_keys "
      "WHERE user_id = %s AND fingerprint = %s" },
    { "ospab_sshkey_count", "SELECT COUNT(*) FROM ssh_keys WHERE user_id = %s" },
    { "ospab_sshkey_insert",
      "INSERT INTO ssh_keys (user_id, name, public_key, fingerprint, created_at) "
      "VALUES (%s, %s, %s, %s, %s)" },
    { "ospab_sshkey_delete", "DELETE FROM ssh_keys WHERE id = %s AND user_id = %s" },
    /* an account's keys go with it (SQLite's connections do not enforce the cascade) */
    { "ospab_user_delete_sshkeys", "DELETE FROM ssh_keys WHERE user_id = %s" },
    { "ospab_user_admins", "SELECT id FROM users WHERE role = 'admin' AND enabled = 1 "
      "ORDER BY id" },
    /* health */
    { "ospab_ping", "SELECT COUNT(*) FROM schema_migrations" },
    { NULL, NULL }
};
