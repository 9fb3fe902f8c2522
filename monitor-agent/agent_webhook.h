/* ospab-agent: webhooks, which deliver webhook_outbox to the main site (agent_webhook.c). */
#ifndef AGENT_WEBHOOK_H
#define AGENT_WEBHOOK_H

#include "agent_ctx.h"

agent_tick_fn agent_webhook_tick;

#endif
