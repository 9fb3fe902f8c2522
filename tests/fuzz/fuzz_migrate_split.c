/* libFuzzer: ospab_migrate_split (lib/ospab_migrate.c) on arbitrary text, with backslash
 * escapes off (SQLite) and on (MySQL). The input is the text of a migration file; it ends at
 * its first NUL, as a statement does (statements are C strings).
 *
 * Checked: APR_SUCCESS or APR_EINVAL with a message, nothing else; every statement is
 * non-empty, trimmed, starts on a line of the text, in order; and the statements joined by
 * ";\n" split again into the same statements (comments are gone and quotes closed, so
 * splitting what the splitter made changes nothing). */
#include "fuzz_common.h"
#include "ospab_migrate.h"

#include <apr_lib.h>
#include <apr_strings.h>

static void split_checked(const char *text, apr_size_t len, int backslash, int lines)
{
    apr_array_header_t *stmts = NULL, *again = NULL;
    const char *err = NULL, *joined = "";
    apr_status_t rv = ospab_migrate_split(fuzz_pool, text, len, backslash, &stmts, &err);
    int i, last = 1;

    if (rv == APR_EINVAL) {
        if (!err || stmts) {
            abort();
        }
        return;
    }
    if (rv != APR_SUCCESS || !stmts) {
        abort();
    }
    for (i = 0; i < stmts->nelts; ++i) {
        const ospab_migrate_stmt_t *st = &APR_ARRAY_IDX(stmts, i, ospab_migrate_stmt_t);
        apr_size_t n = strlen(st->sql);

        if (!n || apr_isspace(st->sql[0]) || apr_isspace(st->sql[n - 1])
            || st->line < last || st->line > lines) {
            abort();
        }
        last = st->line;
        joined = apr_pstrcat(fuzz_pool, joined, st->sql, ";\n", NULL);
    }
    if (ospab_migrate_split(fuzz_pool, joined, strlen(joined), backslash, &again, &err)
            != APR_SUCCESS || again->nelts != stmts->nelts) {
        abort();
    }
    for (i = 0; i < stmts->nelts; ++i) {
        if (strcmp(APR_ARRAY_IDX(stmts, i, ospab_migrate_stmt_t).sql,
                   APR_ARRAY_IDX(again, i, ospab_migrate_stmt_t).sql)) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    apr_size_t len = strlen(text), i;
    int lines = 1;

    for (i = 0; i < len; ++i) {
        lines += text[i] == '\n';
    }
    split_checked(text, len, 0, lines);
    split_checked(text, len, 1, lines);
    apr_pool_clear(fuzz_pool);
    return 0;
}
