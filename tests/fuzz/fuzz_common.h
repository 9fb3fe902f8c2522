/* Shared by the libFuzzer targets: one APR pool, created once and cleared per input. */
#ifndef OSPAB_FUZZ_COMMON_H
#define OSPAB_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

static apr_pool_t *fuzz_pool;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&fuzz_pool, NULL) != APR_SUCCESS) {
        abort();
    }
    return 0;
}

/* A NUL-terminated copy of data[0..size) from the pool (may contain inner NULs). */
static char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = apr_palloc(fuzz_pool, size + 1);

    if (size) {
        memcpy(s, data, size);
    }
    s[size] = '\0';
    return s;
}

#endif
