/* ospab core: events. A state change and the event that tells about it are written in the
 * same transaction into webhook_outbox (a transactional outbox): the agent delivers the rows
 * to the main site's webhook and pushes them to browsers, so an event can neither be lost
 * while its change is kept nor be sent for a change that was rolled back.
 *
 * A row's payload is the webhook body:
 *   {"id": <row id>, "event": "server.status", "createdAt": "...Z", "data": {...}}
 * where "id" is filled in by the sender (the row id is known only after the insert). */
#ifndef OSPAB_EVENTS_H
#define OSPAB_EVENTS_H

#include <jansson.h>
#include "ospab_db.h"

/* Event names; data always has serverId and userId (the owner). */
#define OSPAB_EVENT_STATUS   "server.status"    /* status, previous */
#define OSPAB_EVENT_TASK     "task.finished"    /* taskId, action, status ok|error, error */
#define OSPAB_EVENT_DELETED  "server.deleted"   /* reason */
#define OSPAB_EVENT_ALERT_OPENED  "alert.opened"   /* alertId, type, level, value, message,
                                                    * escalated (warning -> critical) */
#define OSPAB_EVENT_ALERT_CLEARED "alert.cleared"  /* alertId, type, value */
#define OSPAB_EVENT_OWNER    "server.owner"     /* previousUserId: the server now belongs to
                                                 * userId (sync update of user_id) */
#define OSPAB_EVENT_TARIFF   "server.tariff"    /* tariffId, previousTariffId, cores, memory,
                                                 * disk: a customer moved the server to
                                                 * another tariff (the billing site charges) */
/* For the agents only, never delivered as a webhook: what a user may watch changed.
 * data: userId, reason (disabled, enabled, role, deleted, logout, revoked) and, when one
 * login ended, sessionId. No serverId. */
#define OSPAB_EVENT_ACCESS   "user.access"

/* Inserts the event row on db's connection (inside the caller's transaction, if any).
 * data is borrowed. */
apr_status_t ospab_event_add(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *event,
                             json_t *data);

/* The same for an event only the agents read (OSPAB_EVENT_ACCESS). */
apr_status_t ospab_event_add_internal(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                      const char *event, json_t *data);

/* user.access for user_id (session may be NULL), in the caller's transaction. */
apr_status_t ospab_event_access(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                const char *user_id, const char *session, const char *reason);

/* The row's payload as sent: the stored payload with "id" set. NULL if it does not parse. */
json_t *ospab_event_payload(const char *row_id, const char *stored);

#endif
