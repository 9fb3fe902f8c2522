/* Unit tests in process (fixture.h): panel logins, refresh-token rotation and reuse, and
 * who a token names as the database says now (ospab_session_principal). */
#include <string.h>

#include <apr_strings.h>

#include "tests.h"
#include "fixture.h"
#include "ospab_session.h"
#include "ospab_jwt.h"

static fx_t *fx;
static ospab_jwt_conf_t jwt;
static ospab_session_conf_t conf;
static const char *uid;

static void setup(void)
{
    static const char key[] = "0123456789abcdef0123456789abcdef-unit";

    fx = fx_open();
    memset(&jwt, 0, sizeof(jwt));
    jwt.alg = JWT_ALG_HS256;
    jwt.alg_name = "HS256";
    jwt.verify_key = jwt.sign_key = (const unsigned char *)key;
    jwt.verify_key_len = jwt.sign_key_len = (int)strlen(key);
    jwt.access_ttl = 900;
    conf.jwt = &jwt;
    conf.refresh_ttl = 86400;
    conf.user_agent = "check";
    uid = fx_user(fx, "Carol@Example.com", "admin");
}

static void teardown(void)
{
    fx_close(fx);
}

static ospab_result_t call(void (*fn)(ospab_db_t *, apr_pool_t *,
                                      const ospab_session_conf_t *, const ospab_actor_t *,
                                      json_t *, ospab_result_t *), json_t *body)
{
    ospab_result_t res = { 0 };

    fn(&fx->db, fx->pool, &conf, &fx->actor, body, &res);
    json_decref(body);
    return res;
}

static ospab_result_t login(const char *email, const char *password)
{
    return call(ospab_session_login, json_pack("{s:s, s:s}", "email", email,
                                               "password", password));
}

static const char *field(const ospab_result_t *res, const char *name)
{
    const char *v = json_string_value(json_object_get(res->body, name));

    return v ? apr_pstrdup(fx->pool, v) : NULL;
}

/* ospab_session_list for claims and page pg must agree with ospab_session_principal and
 * then ospab_customer_list (two round trips): the same outcome, reason, caller and body. */
static void list_agrees(const ospab_jwt_claims_t *claims, int limit, const char *after)
{
    ospab_list_e kind;

    for (kind = OSPAB_LIST_VPS; kind <= OSPAB_LIST_SERVER; ++kind) {
        ospab_page_t one = { limit, after, NULL }, two = one;
        ospab_principal_t who1, who2;
        ospab_result_t res1 = { 0 }, res2 = { 0 };
        const char *why1 = NULL, *why2 = NULL;
        apr_status_t rv1, rv2;

        rv1 = ospab_session_list(&fx->db, fx->pool, claims, kind, &one, &who1, &res1, &why1);
        rv2 = ospab_session_principal(&fx->db, fx->pool, claims, &who2, &why2);
        ck_assert_int_eq(rv1, rv2);
        if (rv2 != APR_SUCCESS) {
            ck_assert_str_eq(why1, why2);
            continue;
        }
        ck_assert_str_eq(who1.user_id, who2.user_id);
        ck_assert_int_eq(who1.admin, who2.admin);
        ospab_customer_list(&fx->db, fx->pool, &who2, kind, &two, NULL, &res2);
        ck_assert_int_eq(res1.status, 200);
        ck_assert_int_eq(res2.status, 200);
        ck_assert_str_eq(res1.text, res2.text);
        ck_assert_int_eq(one.limit, two.limit);
        ck_assert_str_eq(one.next ? one.next : "-", two.next ? two.next : "-");
    }
}

static void verify(const char *access, ospab_jwt_claims_t *claims)
{
    const char *why = NULL;

    ck_assert_int_eq(ospab_jwt_verify(fx->pool, &jwt, access, fx->actor.now, claims, &why),
                     APR_SUCCESS);
}

/* ospab_session_principal for an access token: APR_SUCCESS, APR_EACCES, ...; the lists
 * that select the caller with their first page decide the same */
static apr_status_t principal(const char *access, ospab_principal_t *who)
{
    ospab_jwt_claims_t claims;
    const char *why = NULL;

    verify(access, &claims);
    list_agrees(&claims, 0, "0");
    return ospab_session_principal(&fx->db, fx->pool, &claims, who, &why);
}

START_TEST(login_by_any_spelling_of_the_address_and_only_with_the_password)
{
    ospab_result_t res = login("  carol@EXAMPLE.com ", "correct horse");
    ospab_principal_t who;

    ck_assert_int_eq(res.status, 200);
    ck_assert_ptr_nonnull(field(&res, "accessToken"));
    ck_assert_ptr_nonnull(field(&res, "refreshToken"));
    ck_assert_int_eq(principal(field(&res, "accessToken"), &who), APR_SUCCESS);
    ck_assert_str_eq(who.user_id, uid);
    ck_assert_int_eq(who.admin, 1);
    ck_assert_ptr_nonnull(who.session);
    res = login("carol@example.com", "wrong horse");
    ck_assert_int_eq(res.status, 401);
    ck_assert_ptr_null(field(&res, "accessToken"));
    res = login("nobody@example.com", "correct horse");
    ck_assert_int_eq(res.status, 401);
}
END_TEST

START_TEST(refresh_rotates_and_a_reused_token_ends_the_login)
{
    ospab_result_t first = login("carol@example.com", "correct horse"), second, again;
    const char *r1 = field(&first, "refreshToken"), *r2;
    ospab_principal_t who;

    second = call(ospab_session_refresh, json_pack("{s:s}", "refreshToken", r1));
    ck_assert_int_eq(second.status, 200);
    r2 = field(&second, "refreshToken");
    ck_assert_str_ne(r1, r2);
    ck_assert_int_eq(principal(field(&second, "accessToken"), &who), APR_SUCCESS);
    /* the spent token again: refused, and the whole login with it */
    again = call(ospab_session_refresh, json_pack("{s:s}", "refreshToken", r1));
    ck_assert_int_eq(again.status, 401);
    again = call(ospab_session_refresh, json_pack("{s:s}", "refreshToken", r2));
    ck_assert_int_eq(again.status, 401);
    ck_assert_int_eq(principal(field(&second, "accessToken"), &who), APR_EACCES);
    /* another login of the same user is another family */
    first = login("carol@example.com", "correct horse");
    ck_assert_int_eq(principal(field(&first, "accessToken"), &who), APR_SUCCESS);
}
END_TEST

START_TEST(logout_ends_the_login_and_its_access_tokens)
{
    ospab_result_t in = login("carol@example.com", "correct horse"), out = { 0 };
    ospab_principal_t who;
    json_t *body = json_pack("{s:s}", "refreshToken", field(&in, "refreshToken"));

    ospab_session_logout(&fx->db, fx->pool, &fx->actor, body, &out);
    json_decref(body);
    ck_assert_int_eq(out.status, 200);
    ck_assert_int_eq(principal(field(&in, "accessToken"), &who), APR_EACCES);
}
END_TEST

START_TEST(the_user_row_decides_enabled_and_role)
{
    ospab_result_t in = login("carol@example.com", "correct horse");
    const char *access = field(&in, "accessToken");
    ospab_principal_t who;

    /* demoted: a user at once, whatever the token's claim */
    fx_exec(fx, apr_psprintf(fx->pool, "UPDATE users SET role = 'user' WHERE id = %s", uid));
    ck_assert_int_eq(principal(access, &who), APR_SUCCESS);
    ck_assert_int_eq(who.admin, 0);
    /* disabled: no access, no new login */
    fx_exec(fx, apr_psprintf(fx->pool, "UPDATE users SET enabled = 0 WHERE id = %s", uid));
    ck_assert_int_eq(principal(access, &who), APR_EACCES);
    in = login("carol@example.com", "correct horse");
    ck_assert_int_eq(in.status, 401);
}
END_TEST

/* The lists' one round trip (ospab_session_list) answers what the principal check and the
 * list did in two: for a customer with none, one, and several pages of servers, for an
 * admin, for a token of no login (an identity provider's: no sid), for an unknown user. */
START_TEST(a_list_with_its_caller_in_one_round_trip_answers_as_in_two)
{
    const char *dave = fx_user(fx, "dave@example.com", "user");
    ospab_jwt_claims_t claims;
    ospab_result_t in;
    int i;

    in = login("dave@example.com", "correct horse");
    ck_assert_int_eq(in.status, 200);
    verify(field(&in, "accessToken"), &claims);
    list_agrees(&claims, 0, "0");                   /* none: [] */
    for (i = 0; i < 7; ++i) {
        fx_server(fx, dave, apr_psprintf(fx->pool, "%d", 300 + i), "running");
        fx_server(fx, uid, apr_psprintf(fx->pool, "%d", 400 + i), "stopped");
    }
    list_agrees(&claims, 0, "0");
    list_agrees(&claims, 2, "0");                   /* paged */
    list_agrees(&claims, 3, "2");
    list_agrees(&claims, 50, "999999");             /* past the end */
    /* the admin: everyone's servers */
    in = login("carol@example.com", "correct horse");
    verify(field(&in, "accessToken"), &claims);
    list_agrees(&claims, 0, "0");
    list_agrees(&claims, 4, "0");
    /* no sid (an identity provider's token): the user row alone */
    claims.sid[0] = '\0';
    list_agrees(&claims, 0, "0");
    fx_exec(fx, apr_psprintf(fx->pool, "UPDATE users SET enabled = 0 WHERE id = %s", uid));
    list_agrees(&claims, 0, "0");
    /* nobody */
    claims.user_id = 987654;
    list_agrees(&claims, 0, "0");
}
END_TEST

Suite *ospab_session_suite(void)
{
    Suite *s = suite_create("sessions (in process)");
    TCase *tc = tcase_create("sessions");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, login_by_any_spelling_of_the_address_and_only_with_the_password);
    tcase_add_test(tc, refresh_rotates_and_a_reused_token_ends_the_login);
    tcase_add_test(tc, logout_ends_the_login_and_its_access_tokens);
    tcase_add_test(tc, the_user_row_decides_enabled_and_role);
    tcase_add_test(tc, a_list_with_its_caller_in_one_round_trip_answers_as_in_two);
    suite_add_tcase(s, tc);
    return s;
}
