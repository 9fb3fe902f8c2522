/* Unit tests in process (fixture.h): one-time console tokens (lib/ospab_console.c): a token
 * is redeemed once, within its minute, for the user, server and kind it was issued for;
 * only its hash is stored. */
#include <string.h>

#include <apr_strings.h>

#include "tests.h"
#include "fixture.h"
#include "ospab_console.h"
#include "ospab_util.h"

static fx_t *fx;
static const char *uid, *sid;

static void setup(void)
{
    fx = fx_open();
    uid = fx_user(fx, "dora@example.com", "user");
    sid = fx_server(fx, uid, "100", "running");
}

static void teardown(void)
{
    fx_close(fx);
}

START_TEST(a_token_is_redeemed_once_for_what_it_was_issued)
{
    apr_time_t now = apr_time_now();
    ospab_console_grant_t g;
    const char *token, *stored;

    ck_assert_int_eq(ospab_console_issue(&fx->db, fx->pool, now, uid, sid, OSPAB_CONSOLE_VNC,
                                         &token), APR_SUCCESS);
    ck_assert_uint_ge(strlen(token), 43);
    ck_assert_ptr_null(strpbrk(token, "+/="));
    /* only its hash is kept */
    stored = fx_scalar(fx, "SELECT token_hash FROM console_tokens");
    ck_assert_str_eq(stored, ospab_sha256_hex(fx->pool, token, strlen(token)));
    ck_assert_int_eq(fx_count(fx, apr_psprintf(fx->pool, "SELECT COUNT(*) FROM console_tokens "
                                               "WHERE token_hash = '%s'", token)), 0);
    ck_assert_int_eq(ospab_console_redeem(&fx->db, fx->pool, now + apr_time_from_sec(5), token,
                                          &g), 1);
    ck_assert_str_eq(g.user_id, uid);
    ck_assert_str_eq(g.vps_id, sid);
    ck_assert_int_eq(g.kind, OSPAB_CONSOLE_VNC);
    /* a second use is refused */
    ck_assert_int_eq(ospab_console_redeem(&fx->db, fx->pool, now + apr_time_from_sec(6), token,
                                          &g), 0);
    ck_assert_ptr_null(g.user_id);
}
END_TEST

START_TEST(an_expired_unknown_or_altered_token_is_refused)
{
    apr_time_t now = apr_time_now();
    ospab_console_grant_t g;
    const char *token, *other;
    char *altered;

    ck_assert_int_eq(ospab_console_issue(&fx->db, fx->pool, now, uid, sid,
                                         OSPAB_CONSOLE_TERMINAL, &token), APR_SUCCESS);
    ck_assert_int_eq(ospab_console_issue(&fx->db, fx->pool, now, uid, sid,
                                         OSPAB_CONSOLE_TERMINAL, &other), APR_SUCCESS);
    ck_assert_str_ne(token, other);
    altered = apr_pstrdup(fx->pool, token);
    altered[0] = altered[0] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(ospab_console_redeem(&fx->db, fx->pool, now, altered, &g), 0);
    ck_assert_int_eq(ospab_console_redeem(&fx->db, fx->pool, now, "short", &g), 0);
    ck_assert_int_eq(ospab_console_redeem(&fx->db, fx->pool, now, NULL, &g), 0);
    /* a minute and a bit later: expired, never redeemable */
    ck_assert_int_eq(ospab_console_redeem(&fx->db, fx->pool,
                                          now + OSPAB_CONSOLE_TOKEN_TTL + apr_time_from_sec(1),
                                          token, &g), 0);
    /* the other one still works within its minute, once */
    ck_assert_int_eq(ospab_console_redeem(&fx->db, fx->pool, now + apr_time_from_sec(59), other,
                                          &g), 1);
    ck_assert_int_eq(g.kind, OSPAB_CONSOLE_TERMINAL);
}
END_TEST

START_TEST(old_tokens_are_purged_when_a_new_one_is_issued)
{
    apr_time_t now = apr_time_now();
    const char *token;

    ck_assert_int_eq(ospab_console_issue(&fx->db, fx->pool, now - apr_time_from_sec(2 * 86400),
                                         uid, sid, OSPAB_CONSOLE_VNC, &token), APR_SUCCESS);
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM console_tokens"), 1);
    ck_assert_int_eq(ospab_console_issue(&fx->db, fx->pool, now, uid, sid, OSPAB_CONSOLE_VNC,
                                         &token), APR_SUCCESS);
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM console_tokens"), 1);
}
END_TEST

/* OspabPanelURL: where the console's URL begins */
START_TEST(the_panel_base_is_a_path_or_an_absolute_url_ending_in_a_slash)
{
    static const char *const good[][2] = {
        { "/", "/" },
        { "/panel", "/panel/" },
        { "/panel/", "/panel/" },
        { "/a/b", "/a/b/" },
        { "https://panel.example.com", "https://panel.example.com/" },
        { "https://panel.example.com:8443/panel", "https://panel.example.com:8443/panel/" },
        { "http://127.0.0.1:8080/", "http://127.0.0.1:8080/" },
    };
    static const char *const bad[] = {
        "", "panel/", "//panel.example.com/", "ftp://panel.example.com/", "https://",
        "https:///panel", "https://:443/", "/panel/?x=1", "/panel/#top", "/my panel/",
        "https://panel.example.com/\tx", "javascript:alert(1)", "HTTPS//x",
    };
    apr_pool_t *p;
    const char *base;
    apr_size_t i;

    apr_pool_create(&p, NULL);
    for (i = 0; i < sizeof(good) / sizeof(good[0]); ++i) {
        ck_assert_msg(ospab_console_panel_base(p, good[i][0], &base) == NULL, "%s", good[i][0]);
        ck_assert_str_eq(base, good[i][1]);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(ospab_console_panel_base(p, bad[i], &base) != NULL, "'%s'", bad[i]);
        ck_assert_ptr_null(base);
    }
    ck_assert_ptr_nonnull(ospab_console_panel_base(p, NULL, &base));
    apr_pool_destroy(p);
}
END_TEST

Suite *ospab_console_suite(void)
{
    Suite *s = suite_create("console tokens (in process)");
    TCase *tc = tcase_create("tokens");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_token_is_redeemed_once_for_what_it_was_issued);
    tcase_add_test(tc, an_expired_unknown_or_altered_token_is_refused);
    tcase_add_test(tc, old_tokens_are_purged_when_a_new_one_is_issued);
    suite_add_tcase(s, tc);
    tc = tcase_create("panel base");
    tcase_add_test(tc, the_panel_base_is_a_path_or_an_absolute_url_ending_in_a_slash);
    suite_add_tcase(s, tc);
    return s;
}
