/* lib/ospab_migrate.h: ospab_migrate_split, which cuts a migration file into the statements
 * sent to the database one at a time. */
#include <stdarg.h>
#include <string.h>

#include <apr_pools.h>
#include <apr_tables.h>

#include "tests.h"
#include "ospab_migrate.h"

/* Splits text and checks the result: n statements, then for each its line and SQL. */
static void split_is(const char *text, int backslash, int n, ...)
{
    apr_array_header_t *stmts = NULL;
    const char *err = NULL;
    va_list ap;
    int i;

    ck_assert_msg(ospab_migrate_split(test_pool, text, strlen(text), backslash, &stmts, &err)
                  == APR_SUCCESS, "%s: %s", text, err ? err : "?");
    ck_assert_ptr_nonnull(stmts);
    ck_assert_msg(stmts->nelts == n, "%s: %d statements, not %d", text, stmts->nelts, n);
    va_start(ap, n);
    for (i = 0; i < n; ++i) {
        const ospab_migrate_stmt_t *st = &APR_ARRAY_IDX(stmts, i, ospab_migrate_stmt_t);
        int line = va_arg(ap, int);
        const char *sql = va_arg(ap, const char *);

        ck_assert_str_eq(st->sql, sql);
        ck_assert_msg(st->line == line, "%s: line %d, not %d", sql, st->line, line);
    }
    va_end(ap);
}

static void split_fails(const char *text, int backslash, const char *message)
{
    apr_array_header_t *stmts = (apr_array_header_t *)&test_pool;
    const char *err = NULL;

    ck_assert_int_eq(ospab_migrate_split(test_pool, text, strlen(text), backslash, &stmts, &err),
                     APR_EINVAL);
    ck_assert_ptr_null(stmts);
    ck_assert_str_eq(err, message);
}

START_TEST(plain_statements)
{
    split_is("CREATE TABLE a (x INT);\nCREATE TABLE b (y INT);\n", 0, 2,
             1, "CREATE TABLE a (x INT)", 2, "CREATE TABLE b (y INT)");
    /* white space around a statement goes; inside it stays */
    split_is("  \n\t SELECT  1 \n ;", 0, 1, 2, "SELECT  1");
    /* CR LF files */
    split_is("SELECT 1;\r\nSELECT 2;\r\n", 0, 2, 1, "SELECT 1", 2, "SELECT 2");
}
END_TEST

START_TEST(text_after_last_semicolon)
{
    split_is("SELECT 1; SELECT 2", 0, 2, 1, "SELECT 1", 1, "SELECT 2");
    split_is("SELECT 1", 0, 1, 1, "SELECT 1");
    split_is("SELECT 1;\n\n  -- only a comment after it\n", 0, 1, 1, "SELECT 1");
}
END_TEST

START_TEST(empty_statements_dropped)
{
    split_is("", 0, 0);
    split_is(";", 0, 0);
    split_is(";; ;\n\t;\n", 0, 0);
    split_is("-- nothing\n/* at all */", 0, 0);
    split_is(";SELECT 1;;/* */;SELECT 2;", 0, 2, 1, "SELECT 1", 1, "SELECT 2");
}
END_TEST

START_TEST(quotes_of_three_kinds)
{
    split_is("INSERT INTO t VALUES ('a;b');", 0, 1, 1, "INSERT INTO t VALUES ('a;b')");
    split_is("SELECT \"col;umn\" FROM t;", 0, 1, 1, "SELECT \"col;umn\" FROM t");
    split_is("SELECT `we;ird` FROM t;", 0, 1, 1, "SELECT `we;ird` FROM t");
    /* one kind of quote inside another is a character */
    split_is("SELECT 'say \"hi;\" `x;`';", 0, 1, 1, "SELECT 'say \"hi;\" `x;`'");
    split_is("SELECT \"it's; `ok`\";", 0, 1, 1, "SELECT \"it's; `ok`\"");
    split_is("SELECT `a'b;\"c`;", 0, 1, 1, "SELECT `a'b;\"c`");
}
END_TEST

START_TEST(doubled_quotes)
{
    split_is("INSERT INTO t VALUES ('it''s; fine');", 0, 1, 1,
             "INSERT INTO t VALUES ('it''s; fine')");
    split_is("SELECT \"a\"\";b\";", 0, 1, 1, "SELECT \"a\"\";b\"");
    split_is("SELECT `a``;b`;", 0, 1, 1, "SELECT `a``;b`");
    split_is("SELECT '';SELECT '''';", 0, 2, 1, "SELECT ''", 1, "SELECT ''''");
}
END_TEST

START_TEST(backslash_escapes)
{
    /* on (MySQL): \' does not end the string */
    split_is("SELECT 'it\\'s; here';", 1, 1, 1, "SELECT 'it\\'s; here'");
    split_is("SELECT 'a\\\\';SELECT 2;", 1, 2, 1, "SELECT 'a\\\\'", 1, "SELECT 2");
    split_is("SELECT \"q\\\";\";", 1, 1, 1, "SELECT \"q\\\";\"");
    /* off (SQLite): a backslash is a character, the quote ends the string */
    split_is("SELECT 'a\\';SELECT 2;", 0, 2, 1, "SELECT 'a\\'", 1, "SELECT 2");
    /* the same text, read both ways: on, the last quote opens a string that never ends */
    split_is("SELECT 'a\\';SELECT 'b';", 0, 2, 1, "SELECT 'a\\'", 1, "SELECT 'b'");
    split_fails("SELECT 'a\\';SELECT 'b';", 1, "unterminated '...' string starting at line 1");
    /* outside quotes a backslash escapes nothing */
    split_is("SELECT 1\\;SELECT 2;", 1, 2, 1, "SELECT 1\\", 1, "SELECT 2");
}
END_TEST

START_TEST(comments)
{
    split_is("-- heading\nSELECT 1; -- after\nSELECT 2 -- inside\n, 3;", 0, 2,
             2, "SELECT 1", 3, "SELECT 2 \n, 3");
    /* a block comment keeps the tokens on either side apart */
    split_is("SELECT/*x*/1;", 0, 1, 1, "SELECT 1");
    split_is("/* one\n   two; three\n*/ SELECT 1;", 0, 1, 3, "SELECT 1");
    /* comment markers inside comments */
    split_is("-- a /* not opened\nSELECT 1;", 0, 1, 2, "SELECT 1");
    split_is("/* -- still the block; */SELECT 1;", 0, 1, 1, "SELECT 1");
    split_is("/*/ not closed yet; */SELECT 1;", 0, 1, 1, "SELECT 1");
    /* a lone '-' or '/' is an operator */
    split_is("SELECT 3-1, 4/2;", 0, 1, 1, "SELECT 3-1, 4/2");
    split_is("SELECT 1 -", 0, 1, 1, "SELECT 1 -");
    /* a line comment at the very end needs no newline */
    split_is("SELECT 1; -- bye", 0, 1, 1, "SELECT 1");
}
END_TEST

START_TEST(comments_inside_quotes)
{
    split_is("SELECT '-- not a comment; really';", 0, 1, 1,
             "SELECT '-- not a comment; really'");
    split_is("SELECT \"/* nor; this */\";", 0, 1, 1, "SELECT \"/* nor; this */\"");
    split_is("SELECT `--x`, '/*';SELECT '*/';", 0, 2, 1, "SELECT `--x`, '/*'",
             1, "SELECT '*/'");
    /* and quotes inside comments */
    split_is("-- don't\nSELECT 1; /* it's \" ` */ SELECT 2;", 0, 2, 2, "SELECT 1",
             2, "SELECT 2");
}
END_TEST

START_TEST(line_numbers)
{
    split_is("-- 001\n\nCREATE TABLE a (x INT);\n/* multi\nline */\n\n"
             "CREATE TABLE b (\n  y INT\n);\nINSERT INTO b VALUES (1); INSERT INTO b VALUES (2);\n",
             0, 4, 3, "CREATE TABLE a (x INT)", 7, "CREATE TABLE b (\n  y INT\n)",
             10, "INSERT INTO b VALUES (1)", 10, "INSERT INTO b VALUES (2)");
    /* new lines inside strings count, escaped or not */
    split_is("SELECT 'a\nb';\nSELECT 2;", 0, 2, 1, "SELECT 'a\nb'", 3, "SELECT 2");
    split_is("SELECT 'a\\\nb';\nSELECT 2;", 1, 2, 1, "SELECT 'a\\\nb'", 3, "SELECT 2");
    split_is("SELECT 'a\\\nb';\nSELECT 2;", 0, 2, 1, "SELECT 'a\\\nb'", 3, "SELECT 2");
    /* a statement starts where its first character is, comments before it or not */
    split_is("SELECT 1;\n\n\n  /* c */\n  -- d\n\n  SELECT\n2;", 0, 2, 1, "SELECT 1",
             7, "SELECT\n2");
}
END_TEST

START_TEST(unterminated)
{
    split_fails("SELECT 1;\nSELECT 'abc;\n", 0, "unterminated '...' string starting at line 2");
    split_fails("\n\nSELECT \"x;", 0, "unterminated \"...\" string starting at line 3");
    split_fails("SELECT `x", 0, "unterminated `...` string starting at line 1");
    split_fails("SELECT 'it''s", 0, "unterminated '...' string starting at line 1");
    /* escaped, the closing quote is not one */
    split_fails("SELECT 'a\\';", 1, "unterminated '...' string starting at line 1");
    /* a backslash as the very last byte escapes nothing */
    split_fails("SELECT 'a\\", 1, "unterminated '...' string starting at line 1");
    split_fails("SELECT 1;\n/* never\nclosed", 0, "unterminated /* comment starting at line 2");
    split_fails("/*", 0, "unterminated /* comment starting at line 1");
    split_fails("/*/", 0, "unterminated /* comment starting at line 1");
}
END_TEST

START_TEST(length_is_honoured)
{
    apr_array_header_t *stmts;
    const char *err = NULL;
    const char *text = "SELECT 1; SELECT 'unterminated";

    ck_assert_int_eq(ospab_migrate_split(test_pool, text, 9, 0, &stmts, &err), APR_SUCCESS);
    ck_assert_int_eq(stmts->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(stmts, 0, ospab_migrate_stmt_t).sql, "SELECT 1");
    ck_assert_int_eq(ospab_migrate_split(test_pool, text, 0, 0, &stmts, &err), APR_SUCCESS);
    ck_assert_int_eq(stmts->nelts, 0);
    ck_assert_int_eq(ospab_migrate_split(test_pool, text, strlen(text), 0, &stmts, &err),
                     APR_EINVAL);
}
END_TEST

Suite *ospab_migrate_suite(void)
{
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("split");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, plain_statements);
    tcase_add_test(tc, text_after_last_semicolon);
    tcase_add_test(tc, empty_statements_dropped);
    tcase_add_test(tc, quotes_of_three_kinds);
    tcase_add_test(tc, doubled_quotes);
    tcase_add_test(tc, backslash_escapes);
    tcase_add_test(tc, comments);
    tcase_add_test(tc, comments_inside_quotes);
    tcase_add_test(tc, line_numbers);
    tcase_add_test(tc, unterminated);
    tcase_add_test(tc, length_is_honoured);
    suite_add_tcase(s, tc);
    return s;
}
