/* lib/ospab_fields.h + lib/ospab_resource.h: the vps and user field rules of
 * docs/sync-api.md, record JSON shapes, password hashing. */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "tests.h"
#include "ospab_json.h"
#include "ospab_fields.h"
#include "ospab_resource.h"
#include "ospab_user.h"

static apr_pool_t *pool;
static ospab_field_value_t out[OSPAB_VPS_NFIELDS];
static json_t *errors;
static int nerr;

static void setup(void)
{
    ck_assert_int_eq(apr_pool_create(&pool, NULL), APR_SUCCESS);
    errors = NULL;
    nerr = -1;
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    pool = NULL;
}

/* Validates the JSON text against spec; results in out, errors, nerr. */
static int read_fields(const ospab_field_t *spec, int n, const char *text, int creating)
{
    json_error_t je;
    json_t *obj = ospab_json_own(pool, json_loads(text, 0, &je));

    ck_assert_msg(obj != NULL, "test input is not JSON: %s (%s)", text, je.text);
    errors = ospab_json_own(pool, json_object());
    nerr = ospab_fields_read(pool, spec, n, obj, creating, out, errors);
    return nerr;
}

static int vps(const char *text, int creating)
{
    return read_fields(ospab_vps_fields, OSPAB_VPS_NFIELDS, text, creating);
}

static int user(const char *text, int creating)
{
    return read_fields(ospab_user_fields, OSPAB_USER_NFIELDS, text, creating);
}

/* The message for field, or "" when there is none (so str asserts can show it). */
static const char *msg(const char *field)
{
    const char *s = json_string_value(json_object_get(errors, field));
    return s ? s : "";
}

#define BASE "\"name\":\"test\",\"cpu\":2,\"ram\":2048,\"disk\":50,\"user_id\":5"

START_TEST(spec_order_matches_columns)
{
    ck_assert_str_eq(ospab_vps_fields[OSPAB_VPS_ID].name, "id");
    ck_assert_str_eq(ospab_vps_fields[OSPAB_VPS_RAM].name, "ram");
    ck_assert_str_eq(ospab_vps_fields[OSPAB_VPS_OS_ID].name, "os_id");
    ck_assert_str_eq(ospab_vps_fields[OSPAB_VPS_UPDATED_AT].name, "updated_at");
    ck_assert_str_eq(ospab_user_fields[OSPAB_USER_PASSWORD].name, "password");
    ck_assert_int_eq(ospab_fields_index(ospab_vps_fields, OSPAB_VPS_NFIELDS, "vmid"),
                     OSPAB_VPS_VMID);
    ck_assert_int_eq(ospab_fields_index(ospab_vps_fields, OSPAB_VPS_NFIELDS, "cpus"), -1);
}
END_TEST

START_TEST(vps_create_defaults)
{
    ck_assert_int_eq(vps("{" BASE "}", 1), 0);
    ck_assert_int_eq(json_object_size(errors), 0);
    ck_assert_int_eq(out[OSPAB_VPS_STATUS].present, 1);
    ck_assert_str_eq(out[OSPAB_VPS_STATUS].value, "creating");
    ck_assert_str_eq(out[OSPAB_VPS_HYPERVISOR].value, "proxmox");
    ck_assert_str_eq(out[OSPAB_VPS_CPU].value, "2");
    ck_assert_str_eq(out[OSPAB_VPS_RAM].value, "2048");
    ck_assert_str_eq(out[OSPAB_VPS_NAME].value, "test");
    ck_assert_int_eq(out[OSPAB_VPS_IP].present, 0);
    ck_assert_int_eq(out[OSPAB_VPS_ID].present, 0);

    /* an update changes only what was sent: no defaults */
    ck_assert_int_eq(vps("{\"id\":1,\"status\":\"running\"}", 0), 0);
    ck_assert_str_eq(out[OSPAB_VPS_ID].value, "1");
    ck_assert_str_eq(out[OSPAB_VPS_STATUS].value, "running");
    ck_assert_int_eq(out[OSPAB_VPS_HYPERVISOR].present, 0);
    ck_assert_int_eq(out[OSPAB_VPS_NAME].present, 0);
}
END_TEST

START_TEST(vps_create_required)
{
    ck_assert_int_eq(vps("{}", 1), 5);
    ck_assert_str_eq(msg("name"), "is required");
    ck_assert_str_eq(msg("cpu"), "is required");
    ck_assert_str_eq(msg("ram"), "is required");
    ck_assert_str_eq(msg("disk"), "is required");
    ck_assert_str_eq(msg("user_id"), "is required");
    ck_assert_ptr_null(json_object_get(errors, "status"));
    ck_assert_int_eq(vps("{}", 0), 0);
}
END_TEST

START_TEST(vps_ram_in_gb)
{
    ck_assert_int_eq(vps("{\"name\":\"t\",\"cpu\":2,\"ram\":8,\"disk\":50,\"user_id\":5}", 1), 1);
    ck_assert_ptr_nonnull(strstr(msg("ram"), "MB"));
    ck_assert_ptr_nonnull(strstr(msg("ram"), "got 8"));
    ck_assert_ptr_nonnull(strstr(msg("ram"), "did you send GB"));
    ck_assert_int_eq(out[OSPAB_VPS_RAM].present, 0);
}
END_TEST

START_TEST(vps_integers_must_be_json_integers)
{
    ck_assert_int_eq(vps("{\"cpu\":\"2\"}", 0), 1);
    ck_assert_ptr_nonnull(strstr(msg("cpu"), "integer"));
    ck_assert_int_eq(vps("{\"cpu\":2.5}", 0), 1);
    ck_assert_ptr_nonnull(strstr(msg("cpu"), "integer"));
    ck_assert_int_eq(vps("{\"cpu\":true}", 0), 1);
    ck_assert_ptr_nonnull(strstr(msg("cpu"), "integer"));
    ck_assert_int_eq(vps("{\"disk\":50.0}", 0), 1);
}
END_TEST

START_TEST(vps_ranges)
{
    ck_assert_int_eq(vps("{\"cpu\":0,\"ram\":4194305,\"disk\":0,\"vmid\":99,\"user_id\":0,"
                         "\"tariff_id\":0}", 0), 6);
    ck_assert_str_eq(msg("cpu"), "must be an integer number of cores between 1 and 1024");
    ck_assert_str_eq(msg("ram"), "must be an integer number of MB between 128 and 4194304");
    ck_assert_ptr_nonnull(strstr(msg("disk"), "GB"));
    ck_assert_ptr_nonnull(strstr(msg("vmid"), "100"));

    ck_assert_int_eq(vps("{\"cpu\":1025,\"vmid\":1000000000,\"user_id\":2147483648}", 0), 3);

    ck_assert_int_eq(vps("{\"cpu\":1024,\"ram\":128,\"disk\":1048576,\"vmid\":999999999,"
                         "\"user_id\":2147483647}", 0), 0);
    ck_assert_str_eq(out[OSPAB_VPS_VMID].value, "999999999");
    ck_assert_int_eq(vps("{\"cpu\":1,\"ram\":4194304,\"disk\":1,\"vmid\":100}", 0), 0);
}
END_TEST

START_TEST(vps_enums)
{
    ck_assert_int_eq(vps("{\"status\":\"deleted\",\"hypervisor\":\"docker\",\"kind\":\"vm\"}", 0),
                     3);
    ck_assert_str_eq(msg("status"), "must be one of creating, running, stopped, suspended");
    ck_assert_str_eq(msg("hypervisor"), "must be one of proxmox, vmware, hyperv, kvm, xen");
    ck_assert_str_eq(msg("kind"), "must be one of lxc, qemu");
    ck_assert_int_eq(vps("{\"status\":\"Running\"}", 0), 1);
    ck_assert_int_eq(vps("{\"status\":\"suspended\",\"hypervisor\":\"xen\",\"kind\":\"lxc\"}", 0),
                     0);
    ck_assert_str_eq(out[OSPAB_VPS_KIND].value, "lxc");
}
END_TEST

START_TEST(vps_ip_address)
{
    static const char *const good[] = { "10.0.0.5", "2001:db8::1", "::1", NULL };
    static const char *const bad[] = { "999.1.1.1", "garbage", "10.0.0.5/24", " 10.0.0.5",
                                       "10.0.0", "2001:db8::1::2", "", NULL };
    int i;

    for (i = 0; good[i]; ++i) {
        ck_assert_msg(vps(apr_psprintf(pool, "{\"ip_address\":\"%s\"}", good[i]), 0) == 0,
                      "%s refused", good[i]);
        ck_assert_str_eq(out[OSPAB_VPS_IP].value, good[i]);
    }
    for (i = 0; bad[i]; ++i) {
        ck_assert_msg(vps(apr_psprintf(pool, "{\"ip_address\":\"%s\"}", bad[i]), 0) == 1,
                      "%s accepted", bad[i]);
    }
    ck_assert_str_eq(msg("ip_address"), "must be an IPv4 or IPv6 address");
    ck_assert_int_eq(vps("{\"ip_address\":null}", 0), 0);
    ck_assert_int_eq(out[OSPAB_VPS_IP].present, 1);
    ck_assert_ptr_null(out[OSPAB_VPS_IP].value);
}
END_TEST

START_TEST(vps_node_names)
{
    char longest[65];
    static const char *const bad[] = { "-pve", "pve_1", "pve 1", "", "pve/1", NULL };
    int i;

    ck_assert_int_eq(vps("{\"node\":\"pve-1\"}", 0), 0);
    ck_assert_str_eq(out[OSPAB_VPS_NODE].value, "pve-1");
    ck_assert_int_eq(vps("{\"node\":\"pve1.example.com\"}", 0), 0);
    for (i = 0; bad[i]; ++i) {
        ck_assert_msg(vps(apr_psprintf(pool, "{\"node\":\"%s\"}", bad[i]), 0) == 1,
                      "node %s accepted", bad[i]);
    }
    memset(longest, 'n', 63);
    longest[63] = '\0';
    ck_assert_int_eq(vps(apr_psprintf(pool, "{\"node\":\"%s\"}", longest), 0), 0);
    longest[63] = 'n';
    longest[64] = '\0';
    ck_assert_int_eq(vps(apr_psprintf(pool, "{\"node\":\"%s\"}", longest), 0), 1);
}
END_TEST

START_TEST(vps_null_only_when_nullable)
{
    ck_assert_int_eq(vps("{\"name\":null,\"cpu\":null,\"status\":null,\"hypervisor\":null,"
                         "\"external_id\":null,\"os\":null,\"node\":null,\"vmid\":null,"
                         "\"kind\":null,\"tariff_id\":null,\"os_id\":null}", 0), 4);
    ck_assert_str_eq(msg("name"), "must not be null");
    ck_assert_str_eq(msg("cpu"), "must not be null");
    ck_assert_str_eq(msg("status"), "must not be null");
    ck_assert_str_eq(msg("hypervisor"), "must not be null");
    ck_assert_int_eq(out[OSPAB_VPS_VMID].present, 1);
    ck_assert_ptr_null(out[OSPAB_VPS_VMID].value);
    ck_assert_int_eq(out[OSPAB_VPS_OS_ID].present, 1);
    ck_assert_ptr_null(out[OSPAB_VPS_OS_ID].value);

    /* a required field sent as null is reported once, not also as missing */
    ck_assert_int_eq(vps("{\"name\":null,\"cpu\":2,\"ram\":2048,\"disk\":50,\"user_id\":5}", 1), 1);
    ck_assert_str_eq(msg("name"), "must not be null");
}
END_TEST

START_TEST(vps_id_and_read_only)
{
    ck_assert_int_eq(vps("{\"id\":1," BASE "}", 1), 1);
    ck_assert_str_eq(msg("id"), "cannot be set on create");
    ck_assert_int_eq(vps("{\"created_at\":\"2026-01-01 00:00:00\"," BASE "}", 1), 1);
    ck_assert_str_eq(msg("created_at"), "is set by the panel and cannot be written");
    ck_assert_int_eq(vps("{\"id\":1,\"updated_at\":\"2026-01-01 00:00:00\"}", 0), 1);
    ck_assert_str_eq(msg("updated_at"), "is set by the panel and cannot be written");
    ck_assert_int_eq(vps("{\"id\":0}", 0), 1);
}
END_TEST

START_TEST(vps_unknown_field)
{
    ck_assert_int_eq(vps("{\"cpus\":2," BASE "}", 1), 1);
    ck_assert_str_eq(msg("cpus"), "unknown field");
    /* a key with a control character is not echoed as such */
    ck_assert_int_eq(vps("{\"a\\u001bb\":1}", 0), 1);
    ck_assert_str_eq(msg("(unprintable)"), "unknown field");
}
END_TEST

START_TEST(vps_text_fields)
{
    char *name = apr_palloc(pool, 256 * 2 + 1);
    int i;

    ck_assert_int_eq(vps("{\"name\":\"\"}", 0), 1);
    ck_assert_str_eq(msg("name"), "must be 1 to 255 printable characters");
    ck_assert_int_eq(vps("{\"name\":\"a\\nb\"}", 0), 1);
    ck_assert_int_eq(vps("{\"name\":\"   \"}", 0), 1);
    ck_assert_str_eq(msg("name"), "must not be blank");
    ck_assert_int_eq(vps("{\"os\":\"\"}", 0), 0);
    /* 255 Cyrillic letters are 510 bytes but 255 characters */
    for (i = 0; i < 255; ++i) {
        memcpy(name + 2 * i, "\xd0\xaf", 2);
    }
    name[510] = '\0';
    ck_assert_int_eq(vps(apr_psprintf(pool, "{\"name\":\"%s\"}", name), 0), 0);
    memcpy(name + 510, "\xd0\xaf", 3);
    ck_assert_int_eq(vps(apr_psprintf(pool, "{\"name\":\"%s\"}", name), 0), 1);
    ck_assert_int_eq(vps(apr_psprintf(pool, "{\"external_id\":\"%s\"}",
                                      apr_pstrndup(pool, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                                   "xxxxxxxxx", 129)), 0), 1);
}
END_TEST

START_TEST(vps_several_errors_and_summary)
{
    const char *s;

    ck_assert_int_eq(vps("{\"name\":\"\",\"cpu\":\"2\",\"ram\":8,\"disk\":0,\"user_id\":-1,"
                         "\"foo\":1,\"status\":\"x\"}", 1), 7);
    ck_assert_int_eq(json_object_size(errors), 7);
    ck_assert_str_eq(msg("foo"), "unknown field");
    s = ospab_fields_summary(pool, "vps", errors);
    ck_assert_msg(strncmp(s, "invalid vps: name: must be", 26) == 0, "summary: %s", s);
    ck_assert_ptr_nonnull(strstr(s, "6 more"));

    ck_assert_int_eq(vps("{\"ram\":8}", 0), 1);
    ck_assert_str_eq(ospab_fields_summary(pool, "vps", errors),
                     apr_pstrcat(pool, "invalid vps: ram: ", msg("ram"), NULL));
    ck_assert_str_eq(ospab_fields_summary(pool, "user", ospab_json_own(pool, json_object())),
                     "invalid user");
}
END_TEST

START_TEST(user_create_defaults)
{
    ck_assert_int_eq(user("{\"email\":\"a@example.com\"}", 1), 0);
    ck_assert_str_eq(out[OSPAB_USER_EMAIL].value, "a@example.com");
    ck_assert_str_eq(out[OSPAB_USER_ROLE].value, "user");
    ck_assert_str_eq(out[OSPAB_USER_ENABLED].value, "1");
    ck_assert_int_eq(out[OSPAB_USER_PASSWORD].present, 0);
    ck_assert_int_eq(out[OSPAB_USER_ID].present, 0);
    ck_assert_int_eq(user("{}", 1), 1);
    ck_assert_str_eq(msg("email"), "is required");
    /* unlike a vps, the panel may be told the user's id on create */
    ck_assert_int_eq(user("{\"id\":5,\"email\":\"a@example.com\",\"role\":\"admin\"}", 1), 0);
    ck_assert_str_eq(out[OSPAB_USER_ID].value, "5");
    ck_assert_str_eq(out[OSPAB_USER_ROLE].value, "admin");
}
END_TEST

START_TEST(user_email_forms)
{
    static const char *const good[] = { "a@example.com", "anna.k+billing@mail.example.com",
                                        "x@b.c", NULL };
    static const char *const bad[] = { "a@b", "@example.com", "a@", "a@@example.com",
                                       "a@x@example.com", "a@.example.com", "a@example.com.",
                                       "a b@example.com", "<a@example.com>", "a,b@example.com",
                                       "", NULL };
    char *huge = apr_palloc(pool, 300);
    int i;

    for (i = 0; good[i]; ++i) {
        ck_assert_msg(user(apr_psprintf(pool, "{\"email\":\"%s\"}", good[i]), 0) == 0,
                      "%s refused: %s", good[i], msg("email"));
    }
    for (i = 0; bad[i]; ++i) {
        ck_assert_msg(user(apr_psprintf(pool, "{\"email\":\"%s\"}", bad[i]), 0) == 1,
                      "%s accepted", bad[i]);
    }
    memset(huge, 'a', 290);
    memcpy(huge + 290, "@ex.com", 8);
    ck_assert_int_eq(user(apr_psprintf(pool, "{\"email\":\"%s\"}", huge), 0), 1);
}
END_TEST

START_TEST(user_role_enabled)
{
    ck_assert_int_eq(user("{\"role\":\"root\"}", 0), 1);
    ck_assert_str_eq(msg("role"), "must be one of user, admin");
    ck_assert_int_eq(user("{\"enabled\":false}", 0), 0);
    ck_assert_str_eq(out[OSPAB_USER_ENABLED].value, "0");
    ck_assert_int_eq(user("{\"enabled\":true}", 0), 0);
    ck_assert_str_eq(out[OSPAB_USER_ENABLED].value, "1");
    ck_assert_int_eq(user("{\"enabled\":\"true\"}", 0), 1);
    ck_assert_int_eq(user("{\"enabled\":1}", 0), 1);
    ck_assert_int_eq(user("{\"enabled\":null}", 0), 1);
}
END_TEST

START_TEST(user_password_length)
{
    char *pw = apr_palloc(pool, 1026);

    ck_assert_int_eq(user("{\"password\":\"1234567\"}", 0), 1);
    ck_assert_int_eq(user("{\"password\":\"12345678\"}", 0), 0);
    ck_assert_str_eq(out[OSPAB_USER_PASSWORD].value, "12345678");
    /* eight Cyrillic letters are eight characters */
    ck_assert_int_eq(user("{\"password\":\"\xd0\xaf\xd0\xaf\xd0\xaf\xd0\xaf"
                          "\xd0\xaf\xd0\xaf\xd0\xaf\xd0\xaf\"}", 0), 0);
    memset(pw, 'p', 256);
    pw[256] = '\0';
    ck_assert_int_eq(user(apr_psprintf(pool, "{\"password\":\"%s\"}", pw), 0), 0);
    pw[256] = 'p';
    pw[257] = '\0';
    ck_assert_int_eq(user(apr_psprintf(pool, "{\"password\":\"%s\"}", pw), 0), 1);
}
END_TEST

START_TEST(vps_json_shape)
{
    static const char *const row[OSPAB_VPS_NCOLS] = {
        "1", NULL, "test", "creating", NULL, "2", "2048", "50", "Ubuntu 22.04", "5",
        "proxmox", "pve1", "100", "qemu", NULL, "3", "2026-01-01 00:00:00",
        "2026-11-22 17:20:00.123", NULL
    };
    /* binding_note (the last column) goes in only when set */
    json_t *j = ospab_json_own(pool, ospab_vps_json(pool, (ospab_row_t)row));

    ck_assert_int_eq(json_object_size(j), OSPAB_VPS_NFIELDS);
    ck_assert(json_is_integer(json_object_get(j, "cpu")));
    ck_assert(json_is_null(json_object_get(j, "tariff_id")));
    ck_assert_str_eq(ospab_json_dump(pool, j),
        "{\"id\":1,\"external_id\":null,\"name\":\"test\",\"status\":\"creating\","
        "\"ip_address\":null,\"cpu\":2,\"ram\":2048,\"disk\":50,\"os\":\"Ubuntu 22.04\","
        "\"user_id\":5,\"hypervisor\":\"proxmox\",\"node\":\"pve1\",\"vmid\":100,"
        "\"kind\":\"qemu\",\"tariff_id\":null,\"os_id\":3,"
        "\"created_at\":\"2026-01-01T00:00:00.000Z\","
        "\"updated_at\":\"2026-11-22T17:20:00.123Z\"}");
}
END_TEST

START_TEST(vps_json_binding_note)
{
    static const char *const row[OSPAB_VPS_NCOLS] = {
        "1", NULL, "web-1", "creating", NULL, "2", "2048", "50", NULL, "5", "proxmox", NULL,
        NULL, NULL, NULL, NULL, "2026-01-01 00:00:00", "2026-01-01 00:00:00",
        "no guest named 'web-1' on the Proxmox clusters"
    };
    json_t *j = ospab_json_own(pool, ospab_vps_json(pool, (ospab_row_t)row));
    ospab_jw_t w;

    ck_assert_int_eq(json_object_size(j), OSPAB_VPS_NFIELDS + 1);
    ck_assert_str_eq(json_string_value(json_object_get(j, "binding_note")), row[18]);
    /* a customer's view leaves it out */
    ospab_jw_init(&w, pool, 64);
    ospab_vps_write(&w, pool, (ospab_row_t)row, 0);
    ck_assert_ptr_null(strstr(ospab_jw_finish(&w, NULL), "binding_note"));
}
END_TEST

START_TEST(user_json_shape)
{
    static const char *const row[] = {
        "5", "a@example.com", "Anna", "user", "1", "2026-01-01 00:00:00",
        "2026-01-02 03:04:05.678"
    };
    static const char *const row2[] = {
        "6", "b@example.com", NULL, "admin", "0", "2026-01-01 00:00:00", NULL
    };
    json_t *j = ospab_json_own(pool, ospab_user_json(pool, (ospab_row_t)row));

    ck_assert_str_eq(ospab_json_dump(pool, j),
        "{\"id\":5,\"email\":\"a@example.com\",\"name\":\"Anna\",\"role\":\"user\","
        "\"enabled\":true,\"created_at\":\"2026-01-01T00:00:00.000Z\","
        "\"updated_at\":\"2026-01-02T03:04:05.678Z\"}");
    ck_assert_ptr_null(json_object_get(j, "password"));
    j = ospab_json_own(pool, ospab_user_json(pool, (ospab_row_t)row2));
    ck_assert(json_is_false(json_object_get(j, "enabled")));
    ck_assert(json_is_null(json_object_get(j, "name")));
    ck_assert(json_is_null(json_object_get(j, "updated_at")));
}
END_TEST

START_TEST(password_hash_verify)
{
    static const char pw[] = "correct horse battery staple";
    const char *h1 = NULL, *h2 = NULL;

    ck_assert_int_eq(ospab_password_hash(pool, pw, &h1), APR_SUCCESS);
    ck_assert_ptr_nonnull(h1);
    ck_assert_msg(!strncmp(h1, "$y$", 3) || !strncmp(h1, "$2b$", 4), "hash %s", h1);
    ck_assert_str_ne(h1, pw);
    ck_assert_ptr_null(strstr(h1, pw));
    ck_assert_int_eq(ospab_password_verify(pw, h1), 1);
    ck_assert_int_eq(ospab_password_verify("correct horse battery stapl", h1), 0);
    ck_assert_int_eq(ospab_password_verify("", h1), 0);
    ck_assert_int_eq(ospab_password_verify(NULL, h1), 0);
    ck_assert_int_eq(ospab_password_verify(pw, ""), 0);
    ck_assert_int_eq(ospab_password_verify(pw, NULL), 0);
    ck_assert_int_eq(ospab_password_verify(pw, pw), 0);
    /* a fresh salt each time */
    ck_assert_int_eq(ospab_password_hash(pool, pw, &h2), APR_SUCCESS);
    ck_assert_str_ne(h1, h2);
    ck_assert_int_eq(ospab_password_verify(pw, h2), 1);
}
END_TEST

Suite *ospab_fields_suite(void)
{
    Suite *s = suite_create("fields");
    TCase *tc = tcase_create("vps");
    TCase *tu = tcase_create("user");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, spec_order_matches_columns);
    tcase_add_test(tc, vps_create_defaults);
    tcase_add_test(tc, vps_create_required);
    tcase_add_test(tc, vps_ram_in_gb);
    tcase_add_test(tc, vps_integers_must_be_json_integers);
    tcase_add_test(tc, vps_ranges);
    tcase_add_test(tc, vps_enums);
    tcase_add_test(tc, vps_ip_address);
    tcase_add_test(tc, vps_node_names);
    tcase_add_test(tc, vps_null_only_when_nullable);
    tcase_add_test(tc, vps_id_and_read_only);
    tcase_add_test(tc, vps_unknown_field);
    tcase_add_test(tc, vps_text_fields);
    tcase_add_test(tc, vps_several_errors_and_summary);
    tcase_add_test(tc, vps_json_shape);
    tcase_add_test(tc, vps_json_binding_note);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(tu, setup, teardown);
    tcase_add_test(tu, user_create_defaults);
    tcase_add_test(tu, user_email_forms);
    tcase_add_test(tu, user_role_enabled);
    tcase_add_test(tu, user_password_length);
    tcase_add_test(tu, user_json_shape);
    tcase_add_test(tu, password_hash_verify);
    suite_add_tcase(s, tu);
    return s;
}
