/* ospab-agent: logging (see agent_log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/time.h>
#include <syslog.h>

#include "agent_log.h"

static volatile int log_level = AGENT_LOG_INFO;
static const char *const names[] = { "error", "warn", "info", "debug" };
static const int priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
static int use_syslog;

void agent_log_to_syslog(const char *ident)
{
    openlog(ident, LOG_PID, LOG_DAEMON);
    use_syslog = 1;
}

void agent_log_set_level(agent_log_level_e level)
{
    log_level = (int)level;
}

int agent_log_level_parse(const char *name, agent_log_level_e *out)
{
    int i;

    for (i = 0; i < 4; ++i) {
        if (!strcasecmp(name, names[i])) {
            *out = (agent_log_level_e)i;
            return 1;
        }
    }
    return 0;
}

int agent_log_enabled(agent_log_level_e level)
{
    return (int)level <= log_level;
}

void agent_log(agent_log_level_e level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    va_list ap;

    if (!agent_log_enabled(level)) {
        return;
    }
    if (use_syslog) {
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        syslog(priorities[level], "%s", line);
        return;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03dZ [%s] ", (int)(tv.tv_usec / 1000),
                          names[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    /* one write per line so that threads do not interleave */
    fprintf(stderr, "%s\n", line);
}
