/* Unit tests of customers' SSH keys (lib/ospab_sshkeys.c, docs/ssh-keys.md): the parser of
 * one OpenSSH public key line on real keys made with ssh-keygen (their fingerprints as
 * `ssh-keygen -lf` printed them when this file was written) and on key data built here
 * field by field (RFC 4253 section 6.6, OpenSSH's PROTOCOL.u2f) for what ssh-keygen cannot
 * make without hardware or would never make; then the routes' operations and the create
 * hook in process (fixture.h). */
#include <string.h>

#include <apr_base64.h>
#include <apr_strings.h>

#include "tests.h"
#include "fixture.h"
#include "ospab_sshkeys.h"

/* ---- keys ssh-keygen made (OpenSSH 9.2p1), with `ssh-keygen -lf`'s fingerprints ---------- */

#define ED25519_LINE "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHdx09jt4niPmZT3G3jAUvugwCw9xrf1pUUHK" \
    "HY7EEBX alice@laptop"
#define ED25519_FP "SHA256:MEgaLiIFbdvZpw6cj2qeQ9OFm8qX0K1DyYYPPwP9/iM"
/* its 32 bytes: the key of the security-key variant built below */
#define ED25519_PK "7771d3d8ede2788f9994f71b78c052fba0c02c3dc6b7f5a5450728763b104057"

#define RSA2048_LINE "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDFRRltuPyDQkgZdeT4nLW7WWapfoWIrNz" \
    "Zb1i7SBTMBxQpUuKp56Kh5mM6nRAIcBfh0vZF/4inqahDX8YgN5pZ91uzKP+uBQcxJgds2EWnkz4UMRhWTse3h3D" \
    "+uVM/U54VqjUFzNv4zoTrK750fpLJW6ispUEZQE59HotuW3qqm76lNGhypLtWcxViero7NMA6dlv9p2Y82I3AnRk" \
    "0qrS4brMgG60oAfGFoAvJsqy9hMQodr9gtpZFFuFJbE0qyuYDQru5/xe9vt275TJktNXPb4yHsMB/4tjEcjJrmlD" \
    "X8o7W2xsmtLSc6XqZP4LdUom2Rrj6idB7TJtFb2r5036d rsa2048 test"
#define RSA2048_FP "SHA256:ZGsGGOhzo5HPpdJjc/lDX228zS7p8D9RywtOXaedW88"

/* as ssh-keygen -C '' wrote it: a blank after the key data, no comment */
#define RSA4096_B64 "AAAAB3NzaC1yc2EAAAADAQABAAACAQDBsa/zzaBFOkTx1MAIBBbNyJCP5lNRlEnAqEt7tc5lu2" \
    "mauqP+SF3CfYhQTtZVZrGlWVG0xw1J9M06ElrY1qR2ekA5NUmFvhLkAUDRDMiZ4ttcjl5bNC9ptXfz4HSBU9fsm9n" \
    "TdcWDbCGVuDWAnoOHskKvRoMp1ZKSP+NjlkcIeXJgFAHRlBaOmOqyxBz6UD1uxhIfqKhM43cD5MGAvGv4heslD1o" \
    "48KXckfE6P1nm+OMo5GKNUfPN7MtBwu7xnjSdoHpuI5kfQZecmobN8ESf2FfBjmaVr/vjVoStUBvxdwzAAFvem9M" \
    "K9bR4eBJdY78z1CIIRuwWLsPEYQ17uX/Hr9DNAPqFiLs6QNohb3Q7GtuobIZt38S+MJsBoItneoJ4Qp8xtEB8Yot" \
    "yIE0D+TW2sfHjQjyOGL7PVbzk4yPiqsEwxXFBzNSQWllrf8avLeUa/nWIE5A/2o7fKf8aHLzQTxEf3lVvdWs1L7y" \
    "Vsh+jeQRhGSqdK6rEljf2lte3lhtop/wEzrRhoaVUhu0ylAy4TPAdzVtWhBMCrpSB3ffd1UoVH0g799lfCDYfU5X" \
    "lb3FEh+qyZTe+bNFtwkZjViU2/WFq/AQ6InFmqBQP006EUYciNQLweQjj6VYefX9Hujjk23Cz1WNrUfTRTb3RFny" \
    "bwV2pSRx9GCIbrRynyEfzdw=="
#define RSA4096_FP "SHA256:Chv3uj/DCu0vQwqWIScGzEaKhIgQUbSo64ZKEEzhdZ8"

#define RSA1024_LINE "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDsFLOSoCTv26q05xVQWqQR1nf53oHYNRW" \
    "UcSzzORI3k/eIy+31KbKfOY8iSFsxFeNsBAeiF/gK2hNRjnkbWjrICQx2J7xEDo1orG3syH3x/bgbcI4XS7eS2/U" \
    "/AbSOiPjuDedISRVu7ERhlWrl2ZCdnKbvopvP3THtkh99GxRZEw== rsa1024"

#define EC256_LINE "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBB" \
    "LARDdtXtYtMEnX4T5ZH79ac1iWuFZ3yhSRTAToidtRieZPB7LIfp7H1+5oeFRprZrTYZV2/y8hPNwQMisAUsfc=" \
    " ec256"
#define EC256_FP "SHA256:L0N+5m0G8n+1QCXh0SdMygo82rEpg5lL07gJAQy2fvk"
/* its point */
#define EC256_Q "04b0110ddb57b58b4c1275f84f9647efd69cd625ae159df2852453013a2276d4627993c1ecb21" \
    "fa7b1f5fb9a1e151a6b66b4d8655dbfcbc84f37040c8ac014b1f7"

#define EC384_LINE "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhB" \
    "C+jEfBvmptiQfKxjVnBUnRYfsY+tWBdejtvCIS5a9fE9X2yiOD4+QdoJPSw5f01IHGtqcfL8xcYuhtNvdqoEiikT" \
    "/wOSFUKsz4SdfgVmUzlCqN6WBG3MgYMjan3YDjbvg== ec384"
#define EC384_FP "SHA256:z11W/4LXeH3TdhsBSIi4nIaQoGYhHCWulan6aJNyZC4"

#define EC521_LINE "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFB" \
    "AGO66tF4pzlvczeW2YXYAvlGrfgKIp/8GN0ZVc04dw0ZmFeWXCS5YLSkd1T57Ncd6Pz9A//p5y9W6eNrAJ4jd7Uq" \
    "wGr5oD9A4q1+EdHcfW0xOjkO5uHdwgSWybDNzpD2sGOu74j+KPgzUQo3W36sdHQCznTLmeQpCSixfWCOaxMiFy0I" \
    "w== ec521"
#define EC521_FP "SHA256:Q21BHWzV4Q6iuWAabQxZKnPP9sEKGXFQB/FLx7+D0DU"

#define DSA_LINE "ssh-dss AAAAB3NzaC1kc3MAAACBAIBNqPw3gr0H7KMyUInCmKJgnU8jb5InvuvE7V/jumJkcDQ" \
    "zDxvw76cU9xFD2re0bRJY3SkIGu5Sh4plcPpTnQ2nU12DRP84CWDpFzMmcx0Rv/Bb9Qy4ffBHjcUJ6uMMEgeQtv" \
    "/fI1DKzrNRLjkSDQhbgDCT7UPvbj4z6BD9dlDHAAAAFQDhJLcZ+uIrFFaEj3KJmg2yAfx7FQAAAIA/oY+X8Iksb" \
    "l6qp0j4coOjbCP283OOwx4JVbgAAQBAsuLxdyub9uGvdLYsWC8ZJ6LG60M6hl7sPSOqT3OkXXDsc7bMpVwlrZs0" \
    "jFl5qhHHtQ8KUR6vPz5JRE6fjDzxzyxkC+8+HLFIgsFEcErBb5K+OqO4yPUy/Bbzk9RFTmYL+gAAAIBJcdAm663" \
    "LLPshoCFFfLAxbW7igjEhsTTMK0CDwmiijUloNGZ+nYoUgDhkX7COIPpK9T8cA7MKMbavyL9l6G47MJUqYTL6TGE" \
    "5XxdPDG99DijHtjB/pFnANH8ixTKnqnjptCuECX7SFTsgWlIGXWpCzyyUGx97ZZyzG4RsfaGkQA== dsa"

/* security keys: what `ssh-keygen -lf` printed for the lines built below from the two keys
 * above (the application "ssh:") */
#define SK_ED25519_FP "SHA256:vq+0M7jIJr5ljKn+vZQnqRJ0ZBeXKYDexGnZNKoVnk4"
#define SK_ECDSA_FP "SHA256:OQUhC5H5vxrn1oQDnqur9qa9k6O0patiGo5VZCjMq9E"

/* ---- key data built field by field --------------------------------------------------------- */

typedef struct {
    unsigned char b[4096];
    apr_size_t n;
} blob_t;

static void put_raw(blob_t *x, const void *s, apr_size_t n)
{
    ck_assert_uint_le(x->n + n, sizeof(x->b));
    memcpy(x->b + x->n, s, n);
    x->n += n;
}

/* a uint32 length and the bytes (RFC 4251 "string", "mpint") */
static void put(blob_t *x, const void *s, apr_size_t n)
{
    unsigned char len[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                             (unsigned char)(n >> 8), (unsigned char)n };

    put_raw(x, len, 4);
    put_raw(x, s, n);
}

static void put_str(blob_t *x, const char *s)
{
    put(x, s, strlen(s));
}

static apr_size_t unhex(const char *hex, unsigned char *out)
{
    apr_size_t i, n = strlen(hex) / 2;

    for (i = 0; i < n; ++i) {
        unsigned v;

        ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
    return n;
}

static void put_hex(blob_t *x, const char *hex)
{
    unsigned char b[1024];

    put(x, b, unhex(hex, b));
}

static const char *b64(const blob_t *x)
{
    char *s = apr_palloc(test_pool, (apr_size_t)apr_base64_encode_len((int)x->n));

    apr_base64_encode_binary(s, x->b, (int)x->n);
    return s;
}

/* "type base64[ comment]" of the key data */
static const char *line_of(const char *type, const blob_t *x, const char *comment)
{
    return comment ? apr_pstrcat(test_pool, type, " ", b64(x), " ", comment, NULL)
                   : apr_pstrcat(test_pool, type, " ", b64(x), NULL);
}

static blob_t ed25519_blob(void)
{
    blob_t x = { .n = 0 };

    put_str(&x, "ssh-ed25519");
    put_hex(&x, ED25519_PK);
    return x;
}

/* an RSA key with exponent 65537 and a modulus of the bytes given (mpint, as is) */
static blob_t rsa_blob(const unsigned char *n, apr_size_t len)
{
    static const unsigned char e[] = { 0x01, 0x00, 0x01 };
    blob_t x = { .n = 0 };

    put_str(&x, "ssh-rsa");
    put(&x, e, sizeof(e));
    put(&x, n, len);
    return x;
}

static ospab_sshkey_t key;

static const char *parse(const char *text)
{
    return ospab_sshkey_parse(test_pool, text, strlen(text), &key);
}

#define ck_refused(text, expected) do { \
        const char *why_ = parse(text); \
        ck_assert_msg(why_ != NULL, "accepted: %s", text); \
        ck_assert_msg(strstr(why_, expected) != NULL, "'%s' does not say '%s'", why_, \
                      expected); \
    } while (0)

/* ---- the parser ---------------------------------------------------------------------------- */

START_TEST(keys_ssh_keygen_made_are_accepted_with_its_fingerprints)
{
    static const struct {
        const char *line, *type, *fp, *comment;
        int bits;
    } keys[] = {
        { ED25519_LINE, "ssh-ed25519", ED25519_FP, "alice@laptop", 256 },
        { RSA2048_LINE, "ssh-rsa", RSA2048_FP, "rsa2048 test", 2048 },
        { EC256_LINE, "ecdsa-sha2-nistp256", EC256_FP, "ec256", 256 },
        { EC384_LINE, "ecdsa-sha2-nistp384", EC384_FP, "ec384", 384 },
        { EC521_LINE, "ecdsa-sha2-nistp521", EC521_FP, "ec521", 521 },
    };
    int i;

    for (i = 0; i < (int)(sizeof(keys) / sizeof(keys[0])); ++i) {
        const char *why = parse(apr_pstrcat(test_pool, keys[i].line, "\n", NULL));

        ck_assert_msg(why == NULL, "%s: %s", keys[i].type, why);
        ck_assert_str_eq(key.type, keys[i].type);
        ck_assert_str_eq(key.fingerprint, keys[i].fp);
        ck_assert_str_eq(key.comment, keys[i].comment);
        ck_assert_str_eq(key.line, keys[i].line);
        ck_assert_int_eq(key.bits, keys[i].bits);
    }
    /* a .pub file without a comment: "type base64 \n" */
    ck_assert_ptr_null(parse("ssh-rsa " RSA4096_B64 " \n"));
    ck_assert_str_eq(key.fingerprint, RSA4096_FP);
    ck_assert_ptr_null(key.comment);
    ck_assert_str_eq(key.line, "ssh-rsa " RSA4096_B64);
    ck_assert_int_eq(key.bits, 4096);
}
END_TEST

START_TEST(security_keys_built_from_their_structure)
{
    blob_t ed = { .n = 0 }, ec = { .n = 0 }, bare = { .n = 0 };

    /* sk-ssh-ed25519@openssh.com: type, the Ed25519 key, the application */
    put_str(&ed, "sk-ssh-ed25519@openssh.com");
    put_hex(&ed, ED25519_PK);
    put_str(&ed, "ssh:");
    ck_assert_ptr_null(parse(line_of("sk-ssh-ed25519@openssh.com", &ed, "sk ed")));
    ck_assert_str_eq(key.fingerprint, SK_ED25519_FP);
    ck_assert_str_eq(key.comment, "sk ed");
    /* sk-ecdsa-sha2-nistp256@openssh.com: type, curve, point, application */
    put_str(&ec, "sk-ecdsa-sha2-nistp256@openssh.com");
    put_str(&ec, "nistp256");
    put_hex(&ec, EC256_Q);
    put_str(&ec, "ssh:");
    ck_assert_ptr_null(parse(line_of("sk-ecdsa-sha2-nistp256@openssh.com", &ec, "sk ec")));
    ck_assert_str_eq(key.fingerprint, SK_ECDSA_FP);
    ck_assert_str_eq(key.type, "sk-ecdsa-sha2-nistp256@openssh.com");
    /* without its application it is not a security key */
    put_str(&bare, "sk-ssh-ed25519@openssh.com");
    put_hex(&bare, ED25519_PK);
    ck_refused(line_of("sk-ssh-ed25519@openssh.com", &bare, NULL), "application is missing");
}
END_TEST

START_TEST(white_space_is_normalised_and_the_comment_kept)
{
    const char *b = ED25519_LINE;
    const char *data = strchr(b, ' ') + 1;
    const char *b64only = apr_pstrndup(test_pool, data, (apr_size_t)(strchr(data, ' ') - data));

    ck_assert_ptr_null(parse(apr_pstrcat(test_pool, " \tssh-ed25519 \t  ", b64only,
                                         "   John Doe's key  \r\n", NULL)));
    ck_assert_str_eq(key.line, apr_pstrcat(test_pool, "ssh-ed25519 ", b64only,
                                           " John Doe's key", NULL));
    ck_assert_str_eq(key.comment, "John Doe's key");
    ck_assert_str_eq(key.base64, b64only);
    /* UTF-8 in the comment */
    ck_assert_ptr_null(parse(apr_pstrcat(test_pool, "ssh-ed25519 ", b64only,
                                         " ключ Алисы", NULL)));
    ck_assert_str_eq(key.comment, "ключ Алисы");
    ck_assert_ptr_null(parse(apr_pstrcat(test_pool, "ssh-ed25519 ", b64only, NULL)));
    ck_assert_ptr_null(key.comment);
}
END_TEST

START_TEST(rsa_below_2048_bits_is_refused)
{
    unsigned char n[257];

    ck_refused(RSA1024_LINE, "RSA keys must be at least 2048 bits (this one has 1024)");
    /* 2047 bits (no leading zero byte: the high bit is clear) */
    memset(n, 0xab, sizeof(n));
    n[0] = 0x7f;
    {
        blob_t x = rsa_blob(n, 256);

        ck_refused(line_of("ssh-rsa", &x, NULL), "(this one has 2047)");
    }
    /* 2048 bits: a leading zero keeps the number positive */
    n[0] = 0x00;
    n[1] = 0xc5;
    {
        blob_t x = rsa_blob(n, 257);

        ck_assert_ptr_null(parse(line_of("ssh-rsa", &x, NULL)));
        ck_assert_int_eq(key.bits, 2048);
    }
}
END_TEST

START_TEST(rsa_numbers_must_be_well_formed)
{
    unsigned char n[258];

    memset(n, 0xab, sizeof(n));
    /* negative (high bit set without a leading zero) */
    n[0] = 0x80;
    {
        blob_t x = rsa_blob(n, 256);

        ck_refused(line_of("ssh-rsa", &x, NULL), "the RSA numbers are truncated or malformed");
    }
    /* a zero byte that is not needed */
    n[0] = 0x00;
    n[1] = 0x00;
    n[2] = 0xc5;
    {
        blob_t x = rsa_blob(n, 258);

        ck_refused(line_of("ssh-rsa", &x, NULL), "the RSA numbers are truncated or malformed");
    }
    /* the modulus missing */
    {
        static const unsigned char e[] = { 0x01, 0x00, 0x01 };
        blob_t x = { .n = 0 };

        put_str(&x, "ssh-rsa");
        put(&x, e, sizeof(e));
        ck_refused(line_of("ssh-rsa", &x, NULL), "the RSA numbers are truncated or malformed");
    }
}
END_TEST

START_TEST(the_type_word_must_be_the_type_inside)
{
    blob_t x = ed25519_blob();

    ck_refused(line_of("ssh-rsa", &x, NULL),
               "not an OpenSSH public key: the key data is of type ssh-ed25519, not ssh-rsa");
    ck_refused(line_of("ecdsa-sha2-nistp256", &x, "c"), "of type ssh-ed25519");
}
END_TEST

START_TEST(bytes_after_the_key_are_refused)
{
    blob_t x = ed25519_blob();
    blob_t y = ed25519_blob();
    static const unsigned char junk[] = { 0, 0, 0, 1, 'x' };

    put_raw(&x, junk, sizeof(junk));
    ck_refused(line_of("ssh-ed25519", &x, NULL), "there are bytes after the key");
    /* truncated: the key's last byte gone (its length still says 32) */
    y.n -= 1;
    ck_refused(line_of("ssh-ed25519", &y, NULL), "the key data is truncated");
    /* an Ed25519 key of 31 bytes */
    {
        blob_t z = { .n = 0 };
        unsigned char b[31] = { 1 };

        put_str(&z, "ssh-ed25519");
        put(&z, b, sizeof(b));
        ck_refused(line_of("ssh-ed25519", &z, NULL), "an Ed25519 key is 32 bytes");
    }
}
END_TEST

START_TEST(ecdsa_curve_and_point_are_checked)
{
    blob_t x = { .n = 0 }, y = { .n = 0 };
    char *q = apr_pstrdup(test_pool, EC256_Q);

    put_str(&x, "ecdsa-sha2-nistp256");
    put_str(&x, "nistp384");
    put_hex(&x, EC256_Q);
    ck_refused(line_of("ecdsa-sha2-nistp256", &x, NULL),
               "the key data's curve is not nistp256, as its type ecdsa-sha2-nistp256 says");
    /* the point's last byte changed: no longer on the curve */
    q[strlen(q) - 1] = q[strlen(q) - 1] == '7' ? '8' : '7';
    put_str(&y, "ecdsa-sha2-nistp256");
    put_str(&y, "nistp256");
    put_hex(&y, q);
    ck_refused(line_of("ecdsa-sha2-nistp256", &y, NULL), "not on the curve nistp256");
}
END_TEST

START_TEST(base64_must_be_exact)
{
    const char *data = strchr(EC256_LINE, ' ') + 1;
    char *b = apr_pstrndup(test_pool, data, (apr_size_t)(strchr(data, ' ') - data));

    ck_refused("ssh-ed25519 AAAA!!!!", "the key data is not valid base64");
    /* "...sfc=": the two unused low bits of the 'c' before the padding set ('d'), another
     * spelling of the same bytes */
    ck_assert_str_eq(b + strlen(b) - 4, "sfc=");
    b[strlen(b) - 2] = 'd';
    ck_refused(apr_pstrcat(test_pool, "ecdsa-sha2-nistp256 ", b, NULL),
               "the key data is not valid base64");
    b[strlen(b) - 2] = 'c';
    b[strlen(b) - 1] = '\0';    /* the padding left out */
    ck_refused(apr_pstrcat(test_pool, "ecdsa-sha2-nistp256 ", b, NULL),
               "the key data is not valid base64");
    ck_refused("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH", "not valid base64");
    ck_refused("ssh-ed25519", "the key data is missing after ssh-ed25519");
}
END_TEST

START_TEST(other_formats_are_named)
{
    ck_refused("-----BEGIN OPENSSH PRIVATE KEY-----\n"
               "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
               "-----END OPENSSH PRIVATE KEY-----\n", "this is a private key: paste the .pub file");
    ck_refused("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
               "this is a private key: paste the .pub file");
    ck_refused("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
               "this is a private key");
    ck_refused("---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"x\"\nAAAAC3Nza\n"
               "---- END SSH2 PUBLIC KEY ----\n", "RFC 4716");
    ck_refused("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
               "this is a PEM file");
    ck_refused(DSA_LINE, "DSA keys (ssh-dss) are not accepted");
    ck_refused("ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAx x",
               "SSH certificates are not accepted");
    ck_refused("ssh-foo AAAAB3NzaC1yc2E x", "not an OpenSSH public key: unknown key type "
               "'ssh-foo' (accepted: ssh-ed25519, ssh-rsa,");
    ck_refused(strchr(ED25519_LINE, ' ') + 1, "the key type (ssh-ed25519, ssh-rsa, ...) is "
               "missing");
}
END_TEST

START_TEST(authorized_keys_options_are_refused)
{
    ck_refused("command=\"echo hi\" " ED25519_LINE, "authorized_keys options (command=, from=, "
               "no-pty, ...) are not accepted");
    ck_refused("no-pty,from=\"10.0.0.1\" " RSA2048_LINE, "authorized_keys options");
    ck_refused("restrict " EC256_LINE, "authorized_keys options");
}
END_TEST

START_TEST(one_line_of_text_only)
{
    const char *two = ED25519_LINE "\n" EC256_LINE "\n";
    char *nul = apr_pstrdup(test_pool, ED25519_LINE);
    apr_size_t n = strlen(nul);

    ck_refused(two, "must be one line");
    ck_refused(ED25519_LINE "\r" EC256_LINE, "must be one line");
    /* a NUL byte inside the text (JSON's \u0000) */
    nul[20] = '\0';
    ck_assert_str_eq(ospab_sshkey_parse(test_pool, nul, n, &key),
                     "must not contain NUL characters");
    ck_refused(ED25519_LINE "\x01", "must not contain control characters");
    ck_refused(ED25519_LINE "\x7f", "must not contain control characters");
    ck_refused(ED25519_LINE "\tand a tab", "the comment after the key must be printable text");
    ck_refused(ED25519_LINE " \xff\xfe", "the comment after the key must be printable text");
    ck_refused("", "must not be empty");
    ck_refused(" \t\r\n", "must not be empty");
}
END_TEST

START_TEST(sizes_are_bounded)
{
    char *big = apr_palloc(test_pool, OSPAB_SSHKEY_MAX_LINE + 2);
    const char *c255, *c256;
    apr_size_t n = strlen(ED25519_LINE);

    /* at the bound: the key and blanks after it, trimmed */
    memcpy(big, ED25519_LINE, n);
    memset(big + n, ' ', OSPAB_SSHKEY_MAX_LINE - n);
    ck_assert_ptr_null(ospab_sshkey_parse(test_pool, big, OSPAB_SSHKEY_MAX_LINE, &key));
    ck_assert_str_eq(key.line, ED25519_LINE);
    big[OSPAB_SSHKEY_MAX_LINE] = ' ';
    ck_assert_str_eq(ospab_sshkey_parse(test_pool, big, OSPAB_SSHKEY_MAX_LINE + 1, &key),
                     "must be at most 16384 bytes: one line of a .pub file");
    /* the comment: 255 characters (here two bytes each) */
    c255 = "";
    while (strlen(c255) < 2 * 255) {
        c255 = apr_pstrcat(test_pool, c255, "й", NULL);
    }
    c256 = apr_pstrcat(test_pool, c255, "x", NULL);
    ck_assert_ptr_null(parse(apr_pstrcat(test_pool, "ssh-rsa " RSA4096_B64 " ", c255, NULL)));
    ck_assert_str_eq(key.comment, c255);
    ck_refused(apr_pstrcat(test_pool, "ssh-rsa " RSA4096_B64 " ", c256, NULL),
               "the comment after the key may have at most 255 characters");
}
END_TEST

/* ---- the routes and the create hook, in process ------------------------------------------- */

static fx_t *fx;
static ospab_principal_t alice, bob, admin;
static ospab_actor_t as_alice;

static void setup(void)
{
    fx = fx_open();
    memset(&alice, 0, sizeof(alice));
    memset(&bob, 0, sizeof(bob));
    memset(&admin, 0, sizeof(admin));
    alice.user_id = fx_user(fx, "alice@example.com", "user");
    bob.user_id = fx_user(fx, "bob@example.com", "user");
    admin.user_id = fx_user(fx, "root@example.com", "admin");
    admin.admin = 1;
    as_alice = fx->actor;
    as_alice.type = "user";
    as_alice.id = alice.user_id;
}

static void teardown(void)
{
    fx_close(fx);
}

/* what to send as the body's publicKey: the line and a name (or NULL: none) */
static ospab_result_t add(const ospab_principal_t *who, const char *name, const char *line)
{
    ospab_result_t res;
    ospab_actor_t a = fx->actor;
    json_t *body = json_object();

    a.type = who->admin ? "admin" : "user";
    a.id = who->user_id;
    if (name) {
        json_object_set_new(body, "name", json_string(name));
    }
    if (line) {
        json_object_set_new(body, "publicKey", json_string(line));
    }
    ospab_sshkeys_add(&fx->db, fx->pool, who, &a, body, &res);
    json_decref(body);
    return res;
}

static const char *error_of(const ospab_result_t *res)
{
    return json_string_value(json_object_get(res->body, "error"));
}

static const char *made_id(const ospab_result_t *res)
{
    json_t *id = json_object_get(json_object_get(res->body, "key"), "id");

    ck_assert_msg(res->status == 201 && json_is_integer(id), "%d %s", res->status,
                  fx_body(fx, res));
    return apr_psprintf(fx->pool, "%" APR_INT64_T_FMT, (apr_int64_t)json_integer_value(id));
}

/* an Ed25519 key of its own for each n (not a real key: the parser does not need one) */
static const char *nth_key(int n)
{
    blob_t x = { .n = 0 };
    unsigned char pk[32];

    memset(pk, 0x5a, sizeof(pk));
    pk[0] = (unsigned char)n;
    pk[1] = (unsigned char)(n >> 8);
    put_str(&x, "ssh-ed25519");
    put(&x, pk, sizeof(pk));
    return apr_pstrdup(fx->pool, line_of("ssh-ed25519", &x, apr_psprintf(test_pool, "k%d", n)));
}

static int rows(const char *where)
{
    return fx_count(fx, apr_pstrcat(fx->pool, "SELECT COUNT(*) FROM ", where, NULL));
}

START_TEST(add_list_delete_with_their_audit_rows)
{
    ospab_result_t res;
    json_t *k;
    const char *id;

    res = add(&alice, "laptop", ED25519_LINE "\n");
    id = made_id(&res);
    k = json_object_get(res.body, "key");
    ck_assert_str_eq(json_string_value(json_object_get(res.body, "status")), "success");
    ck_assert_str_eq(json_string_value(json_object_get(k, "name")), "laptop");
    ck_assert_str_eq(json_string_value(json_object_get(k, "type")), "ssh-ed25519");
    ck_assert_str_eq(json_string_value(json_object_get(k, "fingerprint")), ED25519_FP);
    ck_assert_str_eq(json_string_value(json_object_get(k, "comment")), "alice@laptop");
    ck_assert_str_eq(json_string_value(json_object_get(k, "publicKey")), ED25519_LINE);
    ck_assert_str_eq(json_string_value(json_object_get(k, "createdAt")),
                     "2026-01-02T03:04:05.000Z");
    /* no name: the comment names it; no comment: null */
    res = add(&alice, NULL, EC256_LINE);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(res.body, "key"),
                                                       "name")), "ec256");
    res = add(&alice, "big", "ssh-rsa " RSA4096_B64 " ");
    ck_assert(json_is_null(json_object_get(json_object_get(res.body, "key"), "comment")));

    ospab_sshkeys_list(&fx->db, fx->pool, &alice, &res);
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(json_array_size(res.body), 3);
    k = json_array_get(res.body, 0);
    ck_assert_str_eq(json_string_value(json_object_get(k, "publicKey")), ED25519_LINE);
    ck_assert_int_eq(json_object_size(k), 7);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(res.body, 2), "type")),
                     "ssh-rsa");
    ospab_sshkeys_list(&fx->db, fx->pool, &bob, &res);
    ck_assert_int_eq(json_array_size(res.body), 0);
    ck_assert_int_eq(rows(apr_psprintf(fx->pool, "audit_log WHERE action = 'sshkey.add' AND "
                                       "actor_type = 'user' AND actor_id = '%s' AND "
                                       "target_type = 'ssh_key'", alice.user_id)), 3);

    ospab_sshkeys_delete(&fx->db, fx->pool, &alice, &as_alice, id, &res);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(fx_body(fx, &res), "{\"message\":\"SSH key deleted\",\"status\":\"success\"}");
    ck_assert_int_eq(rows("ssh_keys"), 2);
    ck_assert_int_eq(rows(apr_psprintf(fx->pool, "audit_log WHERE action = 'sshkey.delete' AND "
                                       "target_id = '%s' AND details LIKE '%%" ED25519_FP "%%'",
                                       id)), 1);
    /* once */
    ospab_sshkeys_delete(&fx->db, fx->pool, &alice, &as_alice, id, &res);
    ck_assert_int_eq(res.status, 404);
}
END_TEST

START_TEST(another_accounts_key_is_not_found)
{
    ospab_result_t res = add(&alice, "laptop", ED25519_LINE), mine;
    const char *id = made_id(&res);
    ospab_actor_t a = fx->actor;

    a.type = "user";
    a.id = bob.user_id;
    ospab_sshkeys_delete(&fx->db, fx->pool, &bob, &a, id, &res);
    ospab_sshkeys_delete(&fx->db, fx->pool, &alice, &as_alice, "987654", &mine);
    ck_assert_int_eq(res.status, 404);
    /* the same answer as for a key nobody has */
    ck_assert_str_eq(fx_body(fx, &res), fx_body(fx, &mine));
    ck_assert_str_eq(error_of(&res), "SSH key not found");
    a.type = "admin";
    a.id = admin.user_id;
    ospab_sshkeys_delete(&fx->db, fx->pool, &admin, &a, id, &res);
    ck_assert_int_eq(res.status, 404);
    ck_assert_int_eq(rows("ssh_keys"), 1);
    ck_assert_int_eq(rows("audit_log WHERE action = 'sshkey.delete'"), 0);
    /* the same key in two accounts is two keys */
    res = add(&bob, "bob's", ED25519_LINE);
    ck_assert_int_eq(res.status, 201);
}
END_TEST

START_TEST(a_key_twice_is_409_naming_it)
{
    ospab_result_t res = add(&alice, "laptop", ED25519_LINE);
    const char *id = made_id(&res);
    int audits = rows("audit_log");

    /* the same key data with another comment and spacing */
    res = add(&alice, "again", apr_pstrcat(test_pool, "  ", apr_pstrndup(test_pool,
              ED25519_LINE, strlen(ED25519_LINE) - strlen(" alice@laptop")), " other", NULL));
    ck_assert_int_eq(res.status, 409);
    ck_assert_str_eq(error_of(&res), apr_psprintf(fx->pool, "this key is saved already, as "
                                                  "'laptop' (id %s)", id));
    ck_assert_int_eq(rows("ssh_keys"), 1);
    ck_assert_int_eq(rows("audit_log"), audits);
}
END_TEST

START_TEST(an_account_keeps_at_most_32_keys)
{
    ospab_result_t res;
    int i;

    for (i = 0; i < OSPAB_SSHKEY_PER_USER; ++i) {
        res = add(&alice, NULL, nth_key(i));
        ck_assert_msg(res.status == 201, "%d: %d %s", i, res.status, fx_body(fx, &res));
    }
    res = add(&alice, NULL, nth_key(i));
    ck_assert_int_eq(res.status, 409);
    ck_assert_str_eq(error_of(&res), "you have 32 SSH keys, the most one account may keep: "
                     "delete one first");
    ck_assert_int_eq(rows("ssh_keys"), 32);
    /* another account is not affected */
    res = add(&bob, NULL, nth_key(i));
    ck_assert_int_eq(res.status, 201);
}
END_TEST

START_TEST(refused_adds_say_why_and_write_nothing)
{
    static const struct {
        const char *name, *line, *error;
    } cases[] = {
        { "x", RSA1024_LINE, "invalid SSH key: publicKey: RSA keys must be at least 2048 bits "
          "(this one has 1024)" },
        { "x", NULL, "invalid SSH key: publicKey: is required" },
        { "x", "", "invalid SSH key: publicKey: must not be empty" },
        { "x", "hello", "invalid SSH key: publicKey: not an OpenSSH public key: unknown key "
          "type 'hello'" },
        { NULL, "ssh-rsa " RSA4096_B64, "invalid SSH key: name: is required: the key has no "
          "comment to name it by" },
        { "", ED25519_LINE, "invalid SSH key: name: must be 1 to 64 printable characters" },
        { "   ", ED25519_LINE, "invalid SSH key: name: must be 1 to 64 printable characters" },
        { "tab\there", ED25519_LINE, "invalid SSH key: name: must be 1 to 64 printable "
          "characters" },
    };
    char long_name[66];
    ospab_result_t res;
    json_t *body;
    int i;

    for (i = 0; i < (int)(sizeof(cases) / sizeof(cases[0])); ++i) {
        res = add(&alice, cases[i].name, cases[i].line);
        ck_assert_msg(res.status == 400, "%d: %d", i, res.status);
        ck_assert_msg(!strncmp(error_of(&res), cases[i].error, strlen(cases[i].error)),
                      "%d: %s", i, error_of(&res));
        ck_assert_msg(json_object_size(json_object_get(res.body, "fields")) >= 1, "%d", i);
    }
    memset(long_name, 'n', 65);
    long_name[65] = '\0';
    res = add(&alice, long_name, ED25519_LINE);
    ck_assert_int_eq(res.status, 400);
    long_name[64] = '\0';
    res = add(&alice, long_name, ED25519_LINE);
    ck_assert_int_eq(res.status, 201);
    fx_exec(fx, "DELETE FROM ssh_keys");
    fx_exec(fx, "DELETE FROM audit_log");
    /* a comment longer than a name cannot name the key */
    res = add(&alice, NULL, apr_pstrcat(test_pool, "ssh-rsa " RSA4096_B64 " ",
                                        "a-comment-of-more-than-sixty-four-characters-is-"
                                        "fine-but-it-is-no-name", NULL));
    ck_assert_str_eq(error_of(&res), "invalid SSH key: name: is required: the key's comment "
                     "is longer than 64 characters");
    /* unknown fields, a body that is no object */
    body = json_pack("{s:s, s:s}", "publicKey", ED25519_LINE, "owner", "bob");
    ospab_sshkeys_add(&fx->db, fx->pool, &alice, &as_alice, body, &res);
    json_decref(body);
    ck_assert_str_eq(error_of(&res), "invalid SSH key: owner: unknown field");
    body = json_pack("[s]", ED25519_LINE);
    ospab_sshkeys_add(&fx->db, fx->pool, &alice, &as_alice, body, &res);
    json_decref(body);
    ck_assert_str_eq(error_of(&res), "invalid SSH key: body: must be a JSON object");
    body = json_pack("{s:i}", "publicKey", 5);
    ospab_sshkeys_add(&fx->db, fx->pool, &alice, &as_alice, body, &res);
    json_decref(body);
    ck_assert_int_eq(res.status, 400);
    ck_assert_int_eq(rows("ssh_keys"), 0);
    ck_assert_int_eq(rows("audit_log"), 0);
}
END_TEST

static int for_create(const char *user_id, const char *ids_json, const char **keys,
                      ospab_result_t *res)
{
    json_t *ids = ids_json ? json_loads(ids_json, JSON_DECODE_ANY, NULL) : NULL;
    int rc;

    memset(res, 0, sizeof(*res));
    ck_assert(!ids_json || ids);
    rc = ospab_sshkeys_for_create(&fx->db, fx->pool, user_id, ids, keys, res);
    json_decref(ids);
    return rc;
}

START_TEST(create_takes_the_callers_keys_by_id)
{
    ospab_result_t res = add(&alice, "a", ED25519_LINE);
    const char *a = made_id(&res), *b, *c, *keys = "unset";

    res = add(&alice, "b", EC256_LINE);
    b = made_id(&res);
    res = add(&bob, "c", EC384_LINE);
    c = made_id(&res);
    /* none asked for */
    ck_assert_int_eq(for_create(alice.user_id, NULL, &keys, &res), 0);
    ck_assert_ptr_null(keys);
    ck_assert_int_eq(for_create(alice.user_id, "null", &keys, &res), 0);
    ck_assert_ptr_null(keys);
    ck_assert_int_eq(for_create(alice.user_id, "[]", &keys, &res), 0);
    ck_assert_ptr_null(keys);
    /* in the order asked, each once */
    ck_assert_int_eq(for_create(alice.user_id, apr_psprintf(fx->pool, "[%s, %s, %s]", b, a, b),
                                &keys, &res), 0);
    ck_assert_str_eq(keys, EC256_LINE "\n" ED25519_LINE);
    ck_assert_int_eq(for_create(alice.user_id, apr_psprintf(fx->pool, "[%s]", a), &keys, &res),
                     0);
    ck_assert_str_eq(keys, ED25519_LINE);
    /* another account's key is as unknown as a missing one */
    ck_assert_int_eq(for_create(alice.user_id, apr_psprintf(fx->pool, "[%s, %s]", a, c), &keys,
                                &res), 1);
    ck_assert_int_eq(res.status, 400);
    ck_assert_str_eq(error_of(&res), apr_psprintf(fx->pool, "invalid request: sshKeyIds: "
                                                  "unknown SSH key id %s", c));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(res.body, "fields"),
                                                       "sshKeyIds")),
                     apr_psprintf(fx->pool, "unknown SSH key id %s", c));
    ck_assert_ptr_null(keys);
    ck_assert_int_eq(for_create(alice.user_id, "[987654]", &keys, &res), 1);
    ck_assert_str_eq(error_of(&res), "invalid request: sshKeyIds: unknown SSH key id 987654");
    ck_assert_int_eq(for_create(bob.user_id, apr_psprintf(fx->pool, "[%s]", c), &keys, &res),
                     0);
    ck_assert_str_eq(keys, EC384_LINE);
}
END_TEST

START_TEST(create_refuses_what_is_no_list_of_ids)
{
    static const char *const bad[] = { "5", "\"1\"", "{}", "[0]", "[-3]", "[1.5]", "[\"1\"]",
                                       "[null]", "[true]" };
    const char *keys = "unset", *many = "[1";
    ospab_result_t res;
    int i;

    for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); ++i) {
        ck_assert_int_eq(for_create(alice.user_id, bad[i], &keys, &res), 1);
        ck_assert_msg(res.status == 400 && !strncmp(error_of(&res),
                      "invalid request: sshKeyIds: must be a list of SSH key ids", 56),
                      "%s: %d %s", bad[i], res.status, fx_body(fx, &res));
        ck_assert_ptr_null(keys);
    }
    for (i = 2; i <= OSPAB_SSHKEY_PER_USER + 1; ++i) {
        many = apr_psprintf(fx->pool, "%s, %d", many, i);
    }
    ck_assert_int_eq(for_create(alice.user_id, apr_pstrcat(fx->pool, many, "]", NULL), &keys,
                                &res), 1);
    ck_assert_str_eq(error_of(&res), "invalid request: sshKeyIds: names more than 32 keys");
}
END_TEST

Suite *ospab_sshkeys_suite(void)
{
    Suite *s = suite_create("SSH keys");
    TCase *tc = tcase_create("parse");
    TCase *routes = tcase_create("routes (in process)");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, keys_ssh_keygen_made_are_accepted_with_its_fingerprints);
    tcase_add_test(tc, security_keys_built_from_their_structure);
    tcase_add_test(tc, white_space_is_normalised_and_the_comment_kept);
    tcase_add_test(tc, rsa_below_2048_bits_is_refused);
    tcase_add_test(tc, rsa_numbers_must_be_well_formed);
    tcase_add_test(tc, the_type_word_must_be_the_type_inside);
    tcase_add_test(tc, bytes_after_the_key_are_refused);
    tcase_add_test(tc, ecdsa_curve_and_point_are_checked);
    tcase_add_test(tc, base64_must_be_exact);
    tcase_add_test(tc, other_formats_are_named);
    tcase_add_test(tc, authorized_keys_options_are_refused);
    tcase_add_test(tc, one_line_of_text_only);
    tcase_add_test(tc, sizes_are_bounded);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(routes, test_pool_setup, test_pool_teardown);
    tcase_add_checked_fixture(routes, setup, teardown);
    tcase_add_test(routes, add_list_delete_with_their_audit_rows);
    tcase_add_test(routes, another_accounts_key_is_not_found);
    tcase_add_test(routes, a_key_twice_is_409_naming_it);
    tcase_add_test(routes, an_account_keeps_at_most_32_keys);
    tcase_add_test(routes, refused_adds_say_why_and_write_nothing);
    tcase_add_test(routes, create_takes_the_callers_keys_by_id);
    tcase_add_test(routes, create_refuses_what_is_no_list_of_ids);
    suite_add_tcase(s, routes);
    return s;
}
