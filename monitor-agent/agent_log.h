/* ospab-agent: logging to stderr (journald under systemd), one line per message:
 *   2026-11-22T19:40:01.123Z [warn] poll pve1: Proxmox unreachable (retry in 4 s)
 * Secrets never go through here: callers log names, ids and outcomes, not values. */
#ifndef AGENT_LOG_H
#define AGENT_LOG_H

typedef enum { AGENT_LOG_ERROR, AGENT_LOG_WARN, AGENT_LOG_INFO, AGENT_LOG_DEBUG } agent_log_level_e;

/* The level below which messages are dropped; "error", "warn", "info", "debug". */
void agent_log_set_level(agent_log_level_e level);
int agent_log_level_parse(const char *name, agent_log_level_e *out);
int agent_log_enabled(agent_log_level_e level);

/* From now on to syslog (a detached daemon). */
void agent_log_to_syslog(const char *ident);

void agent_log(agent_log_level_e level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define AGENT_ERROR(...) agent_log(AGENT_LOG_ERROR, __VA_ARGS__)
#define AGENT_WARN(...)  agent_log(AGENT_LOG_WARN, __VA_ARGS__)
#define AGENT_INFO(...)  agent_log(AGENT_LOG_INFO, __VA_ARGS__)
#define AGENT_DEBUG(...) do { if (agent_log_enabled(AGENT_LOG_DEBUG)) \
                                  agent_log(AGENT_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
