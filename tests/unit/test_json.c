/* lib/ospab_json.h: parsing request bodies, test_pool ownership, compact dumps, error shapes. */
#include <string.h>

#include <apr_pools.h>

#include "tests.h"
#include "ospab_json.h"

static apr_status_t parse(const char *s, json_t **j, ospab_json_error_t *err)
{
    return ospab_json_parse(test_pool, s, strlen(s), j, err);
}

START_TEST(parse_ok)
{
    ospab_json_error_t err;
    json_t *j = NULL;

    ck_assert_int_eq(parse("{\"a\": 1, \"b\": \"\xd0\x90\xd0\xbd\xd0\xbd\xd0\xb0\"}", &j, &err),
                     APR_SUCCESS);
    ck_assert(json_is_object(j));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "a")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(j, "b")), "\xd0\x90\xd0\xbd\xd0\xbd\xd0\xb0");
}
END_TEST

START_TEST(parse_respects_length)
{
    /* the body is not NUL-terminated in httpd: only len bytes may be read */
    static const char body[] = "{\"a\":1}trailing garbage";
    ospab_json_error_t err;
    json_t *j = NULL;

    ck_assert_int_eq(ospab_json_parse(test_pool, body, 7, &j, &err), APR_SUCCESS);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "a")), 1);
    ck_assert_int_eq(ospab_json_parse(test_pool, body, sizeof(body) - 1, &j, &err), APR_EINVAL);
    ck_assert_ptr_null(j);
}
END_TEST

START_TEST(parse_malformed_position)
{
    ospab_json_error_t err;
    json_t *j = (json_t *)1;

    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(parse("{\n  \"a\": 1,\n  \"b\": tru\n}", &j, &err), APR_EINVAL);
    ck_assert_ptr_null(j);
    ck_assert_int_eq(err.line, 3);
    ck_assert_int_gt(err.column, 5);
    ck_assert_int_gt(err.position, 15);
    ck_assert_int_ne(err.text[0], '\0');

    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(parse("{\"a\":1,}", &j, &err), APR_EINVAL);
    ck_assert_int_eq(err.line, 1);
    ck_assert_int_eq(err.column, 8);
    ck_assert_int_eq(err.position, 8);

    ck_assert_int_eq(parse("", &j, &err), APR_EINVAL);
}
END_TEST

START_TEST(parse_rejects_duplicates)
{
    ospab_json_error_t err;
    json_t *j = NULL;

    ck_assert_int_eq(parse("{\"cpu\":1,\"cpu\":2}", &j, &err), APR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "duplicate"));
}
END_TEST

START_TEST(parse_rejects_bad_utf8)
{
    ospab_json_error_t err;
    json_t *j = NULL;

    ck_assert_int_eq(parse("{\"name\":\"\xff\xfe\"}", &j, &err), APR_EINVAL);
    /* overlong '/' and a lone surrogate half */
    ck_assert_int_eq(parse("{\"name\":\"\xc0\xaf\"}", &j, &err), APR_EINVAL);
    ck_assert_int_eq(parse("{\"name\":\"\xed\xa0\x80\"}", &j, &err), APR_EINVAL);
}
END_TEST

START_TEST(parse_rejects_nul)
{
    ospab_json_error_t err;
    json_t *j = NULL;

    ck_assert_int_eq(parse("{\"name\":\"a\\u0000b\"}", &j, &err), APR_EINVAL);
    ck_assert_ptr_null(j);
}
END_TEST

START_TEST(parse_result_owned_by_pool)
{
    apr_pool_t *sub;
    ospab_json_error_t err;
    json_t *j = NULL;

    ck_assert_int_eq(apr_pool_create(&sub, test_pool), APR_SUCCESS);
    ck_assert_int_eq(ospab_json_parse(sub, "[1,2]", 5, &j, &err), APR_SUCCESS);
    json_incref(j);
    ck_assert_int_eq(j->refcount, 2);
    apr_pool_destroy(sub);
    /* the test_pool's reference is gone, ours remains */
    ck_assert_int_eq(j->refcount, 1);
    ck_assert_int_eq(json_array_size(j), 2);
    json_decref(j);
}
END_TEST

START_TEST(own_releases_at_clear)
{
    apr_pool_t *sub;
    json_t *o = json_object();

    ck_assert_int_eq(apr_pool_create(&sub, test_pool), APR_SUCCESS);
    ck_assert_ptr_eq(ospab_json_own(sub, o), o);
    json_incref(o);
    apr_pool_clear(sub);
    ck_assert_int_eq(o->refcount, 1);
    json_decref(o);
    ck_assert_ptr_null(ospab_json_own(sub, NULL));
    apr_pool_destroy(sub);
}
END_TEST

START_TEST(dump_compact)
{
    json_t *j = ospab_json_own(test_pool, json_pack("{s:i, s:[i,i], s:s, s:n}", "a", 1, "b", 2, 3,
                                               "c", "\xd0\xaf", "d"));

    ck_assert_str_eq(ospab_json_dump(test_pool, j), "{\"a\":1,\"b\":[2,3],\"c\":\"\xd0\xaf\",\"d\":null}");
    ck_assert_str_eq(ospab_json_dump(test_pool, ospab_json_own(test_pool, json_string("x"))), "\"x\"");
}
END_TEST

START_TEST(error_without_fields)
{
    json_t *e = ospab_json_own(test_pool, ospab_json_error("not found", NULL));

    ck_assert_str_eq(ospab_json_dump(test_pool, e), "{\"error\":\"not found\"}");
    e = ospab_json_own(test_pool, ospab_json_error("invalid vps", json_object()));
    ck_assert_int_eq(json_object_size(e), 1);
    ck_assert_ptr_null(json_object_get(e, "fields"));
}
END_TEST

START_TEST(error_with_fields)
{
    json_t *fields = json_pack("{s:s}", "ram", "must be an integer");
    json_t *e;

    json_incref(fields);
    e = ospab_json_error("invalid vps: ram: must be an integer", fields);
    ck_assert_ptr_eq(json_object_get(e, "fields"), fields);
    ck_assert_int_eq(fields->refcount, 2);
    ck_assert_str_eq(ospab_json_dump(test_pool, e),
                     "{\"error\":\"invalid vps: ram: must be an integer\","
                     "\"fields\":{\"ram\":\"must be an integer\"}}");
    json_decref(e);
    /* the reference handed over was stolen, not leaked */
    ck_assert_int_eq(fields->refcount, 1);
    json_decref(fields);
}
END_TEST

START_TEST(int_or_null)
{
    json_t *v;

    v = ospab_json_own(test_pool, ospab_json_int_or_null("42"));
    ck_assert(json_is_integer(v));
    ck_assert_int_eq(json_integer_value(v), 42);
    v = ospab_json_own(test_pool, ospab_json_int_or_null("9007199254740991"));
    ck_assert(json_integer_value(v) == 9007199254740991LL);
    ck_assert(json_is_null(ospab_json_own(test_pool, ospab_json_int_or_null(NULL))));
    ck_assert(json_is_null(ospab_json_own(test_pool, ospab_json_int_or_null(""))));
    ck_assert(json_is_null(ospab_json_own(test_pool, ospab_json_int_or_null("12abc"))));
}
END_TEST

START_TEST(str_or_null)
{
    json_t *v = ospab_json_own(test_pool, ospab_json_str_or_null("Ubuntu 22.04"));

    ck_assert_str_eq(json_string_value(v), "Ubuntu 22.04");
    ck_assert(json_is_string(ospab_json_own(test_pool, ospab_json_str_or_null(""))));
    ck_assert(json_is_null(ospab_json_own(test_pool, ospab_json_str_or_null(NULL))));
}
END_TEST

Suite *ospab_json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, parse_ok);
    tcase_add_test(tc, parse_respects_length);
    tcase_add_test(tc, parse_malformed_position);
    tcase_add_test(tc, parse_rejects_duplicates);
    tcase_add_test(tc, parse_rejects_bad_utf8);
    tcase_add_test(tc, parse_rejects_nul);
    tcase_add_test(tc, parse_result_owned_by_pool);
    tcase_add_test(tc, own_releases_at_clear);
    tcase_add_test(tc, dump_compact);
    tcase_add_test(tc, error_without_fields);
    tcase_add_test(tc, error_with_fields);
    tcase_add_test(tc, int_or_null);
    tcase_add_test(tc, str_or_null);
    suite_add_tcase(s, tc);
    return s;
}
