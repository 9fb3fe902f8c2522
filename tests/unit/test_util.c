/* lib/ospab_util.h: secrets, SHA-256, key comparison, timestamps, text and id checks. */
#include <stdlib.h>
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "tests.h"
#include "ospab_util.h"
#include "ospab_seal.h"

/* A temporary file holding len bytes of data; removed when the test_pool goes. */
static const char *temp_file(const char *data, apr_size_t len)
{
    char *path = apr_pstrdup(test_pool, "/tmp/ospab-unit-XXXXXX");
    apr_file_t *f;
    apr_size_t written;

    ck_assert_int_eq(apr_file_mktemp(&f, path, APR_FOPEN_CREATE | APR_FOPEN_READ
                                     | APR_FOPEN_WRITE | APR_FOPEN_EXCL
                                     | APR_FOPEN_DELONCLOSE, test_pool), APR_SUCCESS);
    ck_assert_int_eq(apr_file_write_full(f, data, len, &written), APR_SUCCESS);
    /* keep f open: APR_FOPEN_DELONCLOSE removes it at test_pool clean-up */
    return path;
}

#define SECRET "s3cr3t-Value-0123456789-abcdefghijkl"

START_TEST(secret_literal)
{
    const char *out, *err;

    ck_assert_int_eq(ospab_secret_resolve(test_pool, SECRET, &out, &err), APR_SUCCESS);
    ck_assert_str_eq(out, SECRET);
    ck_assert_ptr_null(err);
}
END_TEST

START_TEST(secret_env)
{
    const char *out, *err;

    ck_assert_int_eq(setenv("OSPAB_UNIT_SECRET", SECRET, 1), 0);
    ck_assert_int_eq(ospab_secret_resolve(test_pool, "env:OSPAB_UNIT_SECRET", &out, &err),
                     APR_SUCCESS);
    ck_assert_str_eq(out, SECRET);
    unsetenv("OSPAB_UNIT_SECRET");
}
END_TEST

START_TEST(secret_env_unset)
{
    const char *out = "x", *err = NULL;

    unsetenv("OSPAB_UNIT_MISSING");
    ck_assert_int_ne(ospab_secret_resolve(test_pool, "env:OSPAB_UNIT_MISSING", &out, &err),
                     APR_SUCCESS);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "OSPAB_UNIT_MISSING"));

    /* set but empty counts as unset */
    ck_assert_int_eq(setenv("OSPAB_UNIT_EMPTY", "", 1), 0);
    ck_assert_int_ne(ospab_secret_resolve(test_pool, "env:OSPAB_UNIT_EMPTY", &out, &err),
                     APR_SUCCESS);
    ck_assert_ptr_null(out);
    unsetenv("OSPAB_UNIT_EMPTY");
}
END_TEST

START_TEST(secret_file)
{
    const char *path = temp_file(SECRET "\n", strlen(SECRET) + 1);
    const char *out, *err;

    ck_assert_int_eq(ospab_secret_resolve(test_pool, apr_pstrcat(test_pool, "file:", path, NULL), &out,
                                          &err), APR_SUCCESS);
    ck_assert_str_eq(out, SECRET);

    path = temp_file("  " SECRET " \r\n\n", strlen(SECRET) + 6);
    ck_assert_int_eq(ospab_secret_resolve(test_pool, apr_pstrcat(test_pool, "file:", path, NULL), &out,
                                          &err), APR_SUCCESS);
    /* only trailing white space goes */
    ck_assert_str_eq(out, "  " SECRET);
}
END_TEST

START_TEST(secret_file_missing)
{
    const char *out = "x", *err = NULL;

    ck_assert_int_ne(ospab_secret_resolve(test_pool, "file:/nonexistent/ospab/sync.key", &out,
                                          &err), APR_SUCCESS);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/ospab/sync.key"));
}
END_TEST

START_TEST(secret_file_too_large)
{
    /* a file that is refused must not have its contents echoed in the message */
    apr_size_t len = 5000;
    char *data = apr_palloc(test_pool, len + 1);
    const char *path, *out = "x", *err = NULL;
    apr_size_t i;

    for (i = 0; i < len; ++i) {
        data[i] = SECRET[i % strlen(SECRET)];
    }
    data[len] = '\0';
    path = temp_file(data, len);
    ck_assert_int_ne(ospab_secret_resolve(test_pool, apr_pstrcat(test_pool, "file:", path, NULL), &out,
                                          &err), APR_SUCCESS);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(strstr(err, "s3cr3t"));
}
END_TEST

START_TEST(sha256_vectors)
{
    ck_assert_str_eq(ospab_sha256_hex(test_pool, "abc", 3),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert_str_eq(ospab_sha256_hex(test_pool, "", 0),
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ck_assert_str_eq(ospab_sha256_hex(test_pool,
                     "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56),
                     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* the length is honoured, not the terminator */
    ck_assert_str_eq(ospab_sha256_hex(test_pool, "abc\0def", 3), ospab_sha256_hex(test_pool, "abc", 3));
}
END_TEST

START_TEST(key_matches)
{
    static const char key[] = "correct-horse-battery-staple-0123456789";
    unsigned char digest[OSPAB_SHA256_LEN];

    ospab_sha256(key, strlen(key), digest);
    ck_assert_int_eq(ospab_key_matches(digest, key), 1);
    ck_assert_int_eq(ospab_key_matches(digest, "correct-horse-battery-staple-0123456788"), 0);
    ck_assert_int_eq(ospab_key_matches(digest, "correct-horse"), 0);
    ck_assert_int_eq(ospab_key_matches(digest, "correct-horse-battery-staple-0123456789x"), 0);
    ck_assert_int_eq(ospab_key_matches(digest, ""), 0);
    ck_assert_int_eq(ospab_key_matches(digest, NULL), 0);
}
END_TEST

START_TEST(time_db_format)
{
    /* 2026-01-01T00:00:00Z is 1767225600 */
    ck_assert_str_eq(ospab_time_db(test_pool, apr_time_from_sec(1767225600) + 123456),
                     "2026-01-01 00:00:00.123");
    ck_assert_str_eq(ospab_time_db(test_pool, apr_time_from_sec(1767225600) - 1000),
                     "2025-12-31 23:59:59.999");
    ck_assert_str_eq(ospab_time_db(test_pool, 0), "1970-01-01 00:00:00.000");
}
END_TEST

START_TEST(time_api_conversion)
{
    ck_assert_str_eq(ospab_time_api(test_pool, "2026-01-01 00:00:00"), "2026-01-01T00:00:00.000Z");
    ck_assert_str_eq(ospab_time_api(test_pool, "2026-11-22 17:20:00.123"),
                     "2026-11-22T17:20:00.123Z");
    ck_assert_str_eq(ospab_time_api(test_pool, "2026-11-22 17:20:00.5"), "2026-11-22T17:20:00.500Z");
    ck_assert_str_eq(ospab_time_api(test_pool, "2026-11-22 17:20:00.987654"),
                     "2026-11-22T17:20:00.987Z");
    ck_assert_ptr_null(ospab_time_api(test_pool, NULL));
}
END_TEST

/* "Анна" in UTF-8: four characters, eight bytes */
#define ANNA "\xd0\x90\xd0\xbd\xd0\xbd\xd0\xb0"

START_TEST(text_ok_ascii_and_bounds)
{
    ck_assert_int_eq(ospab_text_ok("Ubuntu 22.04", 1, 100), 1);
    ck_assert_int_eq(ospab_text_ok("", 0, 10), 1);
    ck_assert_int_eq(ospab_text_ok("", 1, 10), 0);
    ck_assert_int_eq(ospab_text_ok("abcde", 5, 5), 1);
    ck_assert_int_eq(ospab_text_ok("abcdef", 1, 5), 0);
    ck_assert_int_eq(ospab_text_ok("abcd", 5, 10), 0);
}
END_TEST

START_TEST(text_ok_multibyte_counts_characters)
{
    ck_assert_int_eq(ospab_text_ok(ANNA, 4, 4), 1);
    ck_assert_int_eq(ospab_text_ok(ANNA, 1, 3), 0);
    ck_assert_int_eq(ospab_text_ok(ANNA, 5, 10), 0);
    /* 3- and 4-byte sequences: "€" and an emoji, one character each */
    ck_assert_int_eq(ospab_text_ok("\xe2\x82\xac\xf0\x9f\x98\x80", 2, 2), 1);
}
END_TEST

START_TEST(text_ok_controls)
{
    ck_assert_int_eq(ospab_text_ok("a\tb", 0, 10), 0);
    ck_assert_int_eq(ospab_text_ok("a\nb", 0, 10), 0);
    ck_assert_int_eq(ospab_text_ok("a\x1b[31m", 0, 10), 0);
    ck_assert_int_eq(ospab_text_ok("a\x7f", 0, 10), 0);
    /* C1 controls U+0080..U+009F are refused, U+00A0 onwards is text */
    ck_assert_int_eq(ospab_text_ok("a\xc2\x80", 0, 10), 0);
    ck_assert_int_eq(ospab_text_ok("a\xc2\x9f", 0, 10), 0);
    ck_assert_int_eq(ospab_text_ok("a\xc2\xa0", 0, 10), 1);
}
END_TEST

START_TEST(text_ok_invalid_utf8)
{
    ck_assert_int_eq(ospab_text_ok("\xff", 0, 10), 0);
    ck_assert_int_eq(ospab_text_ok("\x80", 0, 10), 0);           /* lone continuation */
    ck_assert_int_eq(ospab_text_ok("\xd0", 0, 10), 0);           /* truncated */
    ck_assert_int_eq(ospab_text_ok("\xe2\x82", 0, 10), 0);       /* truncated */
    ck_assert_int_eq(ospab_text_ok("\xc0\xaf", 0, 10), 0);       /* overlong '/' */
    ck_assert_int_eq(ospab_text_ok("\xf5\x80\x80\x80", 0, 10), 0);
}
END_TEST

START_TEST(text_ok_overlong_and_surrogates)
{
    /* valid UTF-8 has no overlong 3/4-byte forms, no UTF-16 surrogates, nothing past U+10FFFF */
    ck_assert_msg(!ospab_text_ok("\xe0\x80\xaf", 0, 10), "overlong 3-byte '/' accepted");
    ck_assert_msg(!ospab_text_ok("\xe0\x80\x80", 0, 10), "overlong 3-byte NUL accepted");
    ck_assert_msg(!ospab_text_ok("\xf0\x80\x80\xaf", 0, 10), "overlong 4-byte '/' accepted");
    ck_assert_msg(!ospab_text_ok("\xed\xa0\x80", 0, 10), "surrogate U+D800 accepted");
    ck_assert_msg(!ospab_text_ok("\xf4\x90\x80\x80", 0, 10), "U+110000 accepted");
}
END_TEST

START_TEST(parse_id)
{
    apr_int64_t v = -1;

    ck_assert_int_eq(ospab_parse_id("42", &v), 0);
    ck_assert(v == 42);
    ck_assert_int_eq(ospab_parse_id("999999999999999", &v), 0);
    ck_assert(v == 999999999999999LL);
    v = 7;
    ck_assert_int_ne(ospab_parse_id("1000000000000000", &v), 0);
    ck_assert(v == 7);
    ck_assert_int_ne(ospab_parse_id("", &v), 0);
    ck_assert_int_ne(ospab_parse_id(NULL, &v), 0);
    ck_assert_int_ne(ospab_parse_id("-1", &v), 0);
    ck_assert_int_ne(ospab_parse_id("+1", &v), 0);
    ck_assert_int_ne(ospab_parse_id(" 1", &v), 0);
    ck_assert_int_ne(ospab_parse_id("12a", &v), 0);
    ck_assert(v == 7);
}
END_TEST

/* ---- lib/ospab_seal.h: AES-256-GCM sealing of the secrets kept in the database ---------- */

#define SEAL_KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

START_TEST(seal_round_trip)
{
    const ospab_seal_key_t *key;
    const char *why = NULL, *a, *b;

    ck_assert_int_eq(ospab_seal_key_load(test_pool, apr_pstrcat(test_pool, "file:",
                     temp_file(" " SEAL_KEY_HEX "\n", 66), NULL), &key, &why), APR_SUCCESS);
    a = ospab_seal(test_pool, key, "cluster-token", "root@pam!ospab=1234-5678");
    b = ospab_seal(test_pool, key, "cluster-token", "root@pam!ospab=1234-5678");
    ck_assert_ptr_nonnull(a);
    ck_assert(!strncmp(a, "v1:", 3));
    ck_assert_ptr_null(strstr(a, "1234-5678"));
    ck_assert_str_ne(a, b);                             /* a fresh nonce each time */
    ck_assert_str_eq(ospab_unseal(test_pool, key, "cluster-token", a),
                     "root@pam!ospab=1234-5678");
    ck_assert_str_eq(ospab_unseal(test_pool, key, "cluster-token", b),
                     "root@pam!ospab=1234-5678");
    ck_assert_str_eq(ospab_unseal(test_pool, key, "x", ospab_seal(test_pool, key, "x", "")),
                     "");
}
END_TEST

START_TEST(seal_refuses_what_it_did_not_seal)
{
    static const unsigned char raw1[OSPAB_SEAL_KEY_LEN] = { 1 }, raw2[OSPAB_SEAL_KEY_LEN] = { 2 };
    const ospab_seal_key_t *k1 = ospab_seal_key_make(test_pool, raw1);
    const ospab_seal_key_t *k2 = ospab_seal_key_make(test_pool, raw2);
    const char *s = ospab_seal(test_pool, k1, "cluster-token", "secret-value");
    char *bent = apr_pstrdup(test_pool, s);

    ck_assert_ptr_null(ospab_unseal(test_pool, k2, "cluster-token", s));     /* other key */
    ck_assert_ptr_null(ospab_unseal(test_pool, k1, "smtp-password", s));     /* other aad */
    bent[10] = bent[10] == 'A' ? 'B' : 'A';                                  /* altered */
    ck_assert_ptr_null(ospab_unseal(test_pool, k1, "cluster-token", bent));
    ck_assert_ptr_null(ospab_unseal(test_pool, k1, "cluster-token", s + 3)); /* no prefix */
    ck_assert_ptr_null(ospab_unseal(test_pool, k1, "cluster-token", "v1:AAAA"));
    ck_assert_ptr_null(ospab_unseal(test_pool, k1, "cluster-token", "v1:not base64!"));
    ck_assert_ptr_null(ospab_unseal(test_pool, k1, "cluster-token", NULL));
    ck_assert_str_eq(ospab_unseal(test_pool, k1, "cluster-token", s), "secret-value");
}
END_TEST

START_TEST(seal_key_file_forms)
{
    const ospab_seal_key_t *key = (const ospab_seal_key_t *)1;
    const char *why = NULL;

    ck_assert_int_ne(ospab_seal_key_load(test_pool, SEAL_KEY_HEX, &key, &why), APR_SUCCESS);
    ck_assert_ptr_null(key);
    ck_assert_ptr_nonnull(strstr(why, "file:"));
    ck_assert_int_ne(ospab_seal_key_load(test_pool, "file:/nonexistent/ospab/secret.key", &key,
                                         &why), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(why, "/nonexistent/ospab/secret.key"));
    /* 31 bytes, 33 bytes, not hex: refused, and the message never shows the digits */
    ck_assert_int_ne(ospab_seal_key_load(test_pool, apr_pstrcat(test_pool, "file:",
                     temp_file(SEAL_KEY_HEX, 62), NULL), &key, &why), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(why, "64 hexadecimal digits"));
    ck_assert_ptr_null(strstr(why, "0011223344"));
    ck_assert_int_ne(ospab_seal_key_load(test_pool, apr_pstrcat(test_pool, "file:",
                     temp_file(SEAL_KEY_HEX "00", 66), NULL), &key, &why), APR_SUCCESS);
    ck_assert_int_ne(ospab_seal_key_load(test_pool, apr_pstrcat(test_pool, "file:",
                     temp_file("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 64), NULL), &key, &why), APR_SUCCESS);
}
END_TEST

Suite *ospab_util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, secret_literal);
    tcase_add_test(tc, secret_env);
    tcase_add_test(tc, secret_env_unset);
    tcase_add_test(tc, secret_file);
    tcase_add_test(tc, secret_file_missing);
    tcase_add_test(tc, secret_file_too_large);
    tcase_add_test(tc, sha256_vectors);
    tcase_add_test(tc, key_matches);
    tcase_add_test(tc, time_db_format);
    tcase_add_test(tc, time_api_conversion);
    tcase_add_test(tc, text_ok_ascii_and_bounds);
    tcase_add_test(tc, text_ok_multibyte_counts_characters);
    tcase_add_test(tc, text_ok_controls);
    tcase_add_test(tc, text_ok_invalid_utf8);
    tcase_add_test(tc, text_ok_overlong_and_surrogates);
    tcase_add_test(tc, parse_id);
    tcase_add_test(tc, seal_round_trip);
    tcase_add_test(tc, seal_refuses_what_it_did_not_seal);
    tcase_add_test(tc, seal_key_file_forms);
    suite_add_tcase(s, tc);
    return s;
}
