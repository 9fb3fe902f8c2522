/* Test driver for lib/ospab_ssh.c (tests/integration/test_ssh_password.py).
 *
 *   ssh-driver [--pub PUBKEY] [--timeout MS] HOST PORT USER KEY KNOWN_HOSTS VMID
 *       ospab_ssh_set_root_password(VMID, <stdin>); prints "ok" or "error: <msg>"
 *   ssh-driver --exec [...] HOST PORT USER KEY KNOWN_HOSTS COMMAND
 *       ospab_ssh_exec(COMMAND, <stdin>); prints "exit <status>" and the output,
 *       or "error: <msg>"
 *   --threads N runs the call N times at once, one thread each (one pool each),
 *       and reports the first failure: ospab_ssh_* must be thread-safe.
 *
 * The password (or stdin data) is read from standard input as is: no newline is
 * stripped, so a test can send one. Exit codes: 0 ok, 2 refused locally
 * (APR_EINVAL), 3 timeout, 4 host key / authentication (APR_EACCES), 5 cannot
 * connect, 6 other failure (incl. the remote command's non-zero exit), 64 usage. */

#include "ospab_ssh.h"

#include <apr_errno.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRIVER_STDIN_MAX 8192
#define DRIVER_THREADS_MAX 64

typedef struct {
    const ospab_ssh_conf_t *conf;
    const char *target;         /* VMID, or the command with --exec */
    const char *input;
    int exec_mode;
    apr_status_t rv;
    int status;
    const char *output;
    const char *err;
    apr_pool_t *p;
} driver_call_t;

static void driver_call(driver_call_t *d)
{
    if (d->exec_mode) {
        d->rv = ospab_ssh_exec(d->p, d->conf, d->target, d->input, &d->status, &d->output,
                               &d->err);
    }
    else {
        char *end;
        long vmid = strtol(d->target, &end, 10);
        if (*end || end == d->target)
            vmid = -1;
        d->rv = ospab_ssh_set_root_password(d->p, d->conf, vmid, d->input, &d->err);
    }
}

static void *APR_THREAD_FUNC driver_thread(apr_thread_t *t, void *data)
{
    driver_call(data);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static int usage(void)
{
    fputs("usage: ssh-driver [--exec] [--pub PUBKEY] [--timeout MS] [--threads N] "
          "[--host-key 'TYPE BASE64'] HOST PORT USER KEY KNOWN_HOSTS|- VMID|COMMAND  "
          "(password/stdin data on stdin)\n", stderr);
    return 64;
}

static int exit_code(apr_status_t rv)
{
    if (APR_STATUS_IS_EINVAL(rv))
        return 2;
    if (APR_STATUS_IS_TIMEUP(rv))
        return 3;
    if (APR_STATUS_IS_EACCES(rv))
        return 4;
    if (APR_STATUS_IS_ECONNREFUSED(rv) || APR_STATUS_IS_EHOSTUNREACH(rv) ||
        APR_STATUS_IS_ENETUNREACH(rv) || APR_STATUS_IS_ECONNRESET(rv))
        return 5;
    return 6;
}

int main(int argc, const char *const *argv)
{
    static char input[DRIVER_STDIN_MAX + 1];
    static driver_call_t calls[DRIVER_THREADS_MAX];
    apr_thread_t *threads[DRIVER_THREADS_MAX];
    ospab_ssh_conf_t conf;
    driver_call_t *d = NULL;
    apr_pool_t *p;
    size_t len;
    int exec_mode = 0, i = 1, n = 1, k, code;

    memset(&conf, 0, sizeof(conf));
    conf.timeout_ms = 10000;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--exec") == 0)
            exec_mode = 1;
        else if (strcmp(argv[i], "--pub") == 0 && i + 1 < argc)
            conf.public_key = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            conf.timeout_ms = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--host-key") == 0 && i + 1 < argc)
            conf.host_key = argv[++i];
        else
            return usage();
    }
    if (argc - i != 6 || n < 1 || n > DRIVER_THREADS_MAX)
        return usage();
    conf.host = argv[i];
    conf.port = atoi(argv[i + 1]);
    conf.user = argv[i + 2];
    conf.private_key = argv[i + 3];
    conf.known_hosts = strcmp(argv[i + 4], "-") ? argv[i + 4] : NULL;

    len = fread(input, 1, DRIVER_STDIN_MAX, stdin);
    if (!feof(stdin)) {
        fputs("error: standard input is longer than 8 KiB\n", stdout);
        return 64;
    }
    input[len] = '\0';

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);

    for (k = 0; k < n; k++) {
        calls[k].conf = &conf;
        calls[k].target = argv[i + 5];
        calls[k].input = input;
        calls[k].exec_mode = exec_mode;
        calls[k].status = -1;
        apr_pool_create(&calls[k].p, NULL);
    }
    if (n == 1) {
        driver_call(&calls[0]);
    }
    else {
        for (k = 0; k < n; k++)
            if (apr_thread_create(&threads[k], NULL, driver_thread, &calls[k], p) != APR_SUCCESS) {
                fputs("error: cannot start threads\n", stdout);
                return 70;
            }
        for (k = 0; k < n; k++) {
            apr_status_t trv;
            apr_thread_join(&trv, threads[k]);
        }
    }
    memset(input, 0, sizeof(input));

    for (k = 0; k < n && !d; k++)
        if (calls[k].rv != APR_SUCCESS || (exec_mode && calls[k].status != 0))
            d = &calls[k];
    if (!d)
        d = &calls[0];
    if (d->rv != APR_SUCCESS) {
        printf("error: %s\n", d->err);
        code = exit_code(d->rv);
    }
    else if (exec_mode) {
        printf("exit %d\n%s", d->status, d->output);
        code = d->status == 0 ? 0 : 6;
    }
    else {
        puts("ok");
        code = 0;
    }
    fflush(stdout);
    for (k = 0; k < n; k++)
        apr_pool_destroy(calls[k].p);
    apr_pool_destroy(p);
    apr_terminate();
    return code;
}
