/* ospab-agent: the mailer, which sends email_outbox over SMTP (agent_mail.c). */
#ifndef AGENT_MAIL_H
#define AGENT_MAIL_H

#include "agent_ctx.h"

agent_tick_fn agent_mail_tick;

#endif
