/* ospab-agent: who may connect to the live push and what they may watch (agent_auth.c). */
#ifndef AGENT_AUTH_H
#define AGENT_AUTH_H

#include "agent_ctx.h"

/* Fills in the live-push server's callbacks (token -> user, ownership, rechecks); they
 * run on the main thread, with db, the main thread's own connection. */
void agent_auth_setup(agent_t *ag, ospab_db_t *db, agent_sio_conf_t *sio);

#endif
