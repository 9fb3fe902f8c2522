/* ospab core: commands on a Proxmox node over SSH (libssh2 >= 1.10).
 *
 * One call = one TCP connection and one SSH session, driven in libssh2's
 * non-blocking mode and polled against a single deadline (conf->timeout_ms), so
 * no step (connect, handshake, authentication, the command) can hold an Apache
 * worker longer than that. The only step outside the deadline is the name lookup
 * (getaddrinfo has no timeout): configure nodes by IP address for a hard bound.
 *
 * Host keys: the node's key must be in conf->known_hosts under the name OpenSSH
 * would use ("host" for port 22, "[host]:port" otherwise), or be conf->host_key
 * (a registered node's own, from the database); unknown or different keys end
 * the call before authentication. Only the host key types that
 * known_hosts holds for the node are offered in the key exchange, so a node with
 * several host keys (Proxmox has RSA, ECDSA and Ed25519) is checked against the
 * one the operator recorded.
 *
 * ospab_ssh_exec's *output is the command's stdout and stderr as they arrive,
 * cut at 64 KiB (the rest is read and dropped so the command can finish). A
 * command ended by a signal is a failure (APR_EGENERAL, *exit_status -1).
 *
 * Return codes: APR_EINVAL (bad arguments), the connect() error (e.g.
 * APR_ECONNREFUSED), APR_TIMEUP (deadline reached in any step), APR_EACCES
 * (host key unknown or different, authentication refused, key file unusable),
 * APR_EGENERAL (SSH protocol failures, a command killed by a signal, and for
 * ospab_ssh_set_root_password a non-zero exit status).
 *
 * libssh2_init() runs once per process (pthread_once), on the first call. It is
 * reference counted, so libcurl calling it too (Debian's libcurl links libssh2)
 * is fine as long as curl_global_init() runs before threads start, as it must
 * anyway. */

#include "ospab_ssh.h"

#include <apr_base64.h>
#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_network_io.h>
#include <apr_poll.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <libssh2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define OSPAB_SSH_OUTPUT_MAX   (64 * 1024)  /* bytes of command output kept */
#define OSPAB_SSH_READ_CHUNK   4096
#define OSPAB_SSH_VMID_MIN     100L         /* Proxmox's pve-vmid range */
#define OSPAB_SSH_VMID_MAX     999999999L
#define OSPAB_SSH_PASSWORD_MAX 1024         /* as the QEMU agent's set-user-password */
#define OSPAB_SSH_DETAIL_MAX   400          /* remote text quoted in an error */
#define OSPAB_SSH_BYE_MAX      (APR_USEC_PER_SEC / 2)  /* polite disconnect */

/* ---------------------------------------------------------------- helpers -- */

/* A memset the compiler may not drop although the buffer dies right after. */
static void *(*const volatile ssh_memset)(void *, int, size_t) = memset;

static void ssh_wipe(void *buf, size_t len)
{
    if (buf && len)
        ssh_memset(buf, 0, len);
}

static pthread_once_t ssh_once = PTHREAD_ONCE_INIT;
static int ssh_init_rc = -1;

static void ssh_global_init(void)
{
    ssh_init_rc = libssh2_init(0);
}

/* Host key types: libssh2's session type, its known_hosts type, the algorithm
 * names to offer in the key exchange (in OpenSSH's order of preference). */
typedef struct {
    int hostkey_type;
    int knownhost_type;
    const char *name;
    const char *methods;
} ssh_keytype_t;

static const ssh_keytype_t ssh_keytypes[] = {
    { LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519,
      "ssh-ed25519", "ssh-ed25519" },
    { LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256,
      "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256" },
    { LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384,
      "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384" },
    { LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521,
      "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521" },
#if LIBSSH2_VERSION_NUM >= 0x010b00
    { LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA,
      "ssh-rsa", "rsa-sha2-512,rsa-sha2-256,ssh-rsa" },
#else
    /* 1.10 knows only SHA-1 RSA signatures, which OpenSSH >= 8.8 no longer offers */
    { LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa", "ssh-rsa" },
#endif
    { LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss", "ssh-dss" },
};

#define SSH_NKEYTYPES (sizeof(ssh_keytypes) / sizeof(ssh_keytypes[0]))

static const ssh_keytype_t *ssh_keytype_of(int hostkey_type)
{
    size_t i;

    for (i = 0; i < SSH_NKEYTYPES; i++)
        if (ssh_keytypes[i].hostkey_type == hostkey_type)
            return &ssh_keytypes[i];
    return NULL;
}

/* "SHA256:<base64 without padding>", as ssh-keygen -l prints it. */
static const char *ssh_fingerprint(apr_pool_t *p, const unsigned char *digest, size_t len)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = apr_palloc(p, 7 + (len + 2) / 3 * 4 + 1), *o;
    size_t i;

    memcpy(out, "SHA256:", 7);
    o = out + 7;
    for (i = 0; i + 2 < len; i += 3) {
        *o++ = b64[digest[i] >> 2];
        *o++ = b64[((digest[i] & 3) << 4) | (digest[i + 1] >> 4)];
        *o++ = b64[((digest[i + 1] & 15) << 2) | (digest[i + 2] >> 6)];
        *o++ = b64[digest[i + 2] & 63];
    }
    if (len - i == 1) {
        *o++ = b64[digest[i] >> 2];
        *o++ = b64[(digest[i] & 3) << 4];
    }
    else if (len - i == 2) {
        *o++ = b64[digest[i] >> 2];
        *o++ = b64[((digest[i] & 3) << 4) | (digest[i + 1] >> 4)];
        *o++ = b64[(digest[i + 1] & 15) << 2];
    }
    *o = '\0';
    return out;
}

/* Remote text made fit for a one-line log message: control characters become
 * spaces, runs of spaces collapse, at most OSPAB_SSH_DETAIL_MAX bytes. */
static const char *ssh_detail(apr_pool_t *p, const char *text)
{
    char *out = apr_palloc(p, OSPAB_SSH_DETAIL_MAX + 4), *o = out;
    int space = 1;

    for (; text && *text && o - out < OSPAB_SSH_DETAIL_MAX; text++) {
        unsigned char ch = (unsigned char)*text;
        if (ch < 0x20 || ch == 0x7f || ch == ' ') {
            if (!space)
                *o++ = ' ';
            space = 1;
        }
        else {
            *o++ = (char)ch;
            space = 0;
        }
    }
    while (o > out && o[-1] == ' ')
        o--;
    if (text && *text) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o = '\0';
    return out;
}

#if LIBSSH2_VERSION_NUM < 0x010b00
/* Whether a key file (private, PEM or OpenSSH format, or public) holds an RSA
 * key: libssh2 1.10 signs with "ssh-rsa" (SHA-1) only, which OpenSSH 8.8 and
 * later refuse, so such a key is refused however it is authorized. */
static int ssh_key_is_rsa(apr_pool_t *p, const char *file)
{
    char text[4096], b64[256], *s;
    unsigned char *raw;
    apr_size_t len = sizeof(text) - 1, n = 0;
    apr_file_t *f;
    int i, found = 0;

    if (!file || apr_file_open(&f, file, APR_FOPEN_READ, APR_OS_DEFAULT, p) != APR_SUCCESS)
        return 0;
    apr_file_read_full(f, text, len, &len);
    apr_file_close(f);
    text[len] = '\0';
    if (strncmp(text, "ssh-rsa ", 8) == 0 || strstr(text, "BEGIN RSA PRIVATE KEY"))
        found = 1;
    else if ((s = strstr(text, "BEGIN OPENSSH PRIVATE KEY")) && (s = strchr(s, '\n'))) {
        /* the key's type is in the first ~60 bytes of openssh-key-v1 */
        for (; *s && *s != '-' && n < sizeof(b64) - 1; s++)
            if (!apr_isspace(*s))
                b64[n++] = *s;
        b64[n - n % 4] = '\0';
        raw = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64));
        n = (apr_size_t)apr_base64_decode_binary(raw, b64);
        for (i = 0; !found && (apr_size_t)i + 11 <= n; i++)
            found = memcmp(raw + i, "\0\0\0\7ssh-rsa", 11) == 0;
    }
    ssh_wipe(text, sizeof(text));
    ssh_wipe(b64, sizeof(b64));
    return found;
}
#endif

/* ------------------------------------------------------------ one session -- */

typedef struct {
    apr_pool_t *p;              /* the caller's: messages and output */
    apr_pool_t *tmp;            /* this call's: socket, buffers */
    const ospab_ssh_conf_t *conf;
    const char *where;          /* "user@host:port", for messages */
    const char *kh_name;        /* the node's name in known_hosts */
    const char *kh_types;       /* host key types known_hosts holds for it */
    int kh_sha1_only;           /* ...and all of them need SHA-1 signatures */
    apr_interval_time_t timeout;
    apr_time_t deadline;
    apr_socket_t *sock;
    apr_os_sock_t fd;
    LIBSSH2_SESSION *session;
    LIBSSH2_KNOWNHOSTS *known;
    LIBSSH2_CHANNEL *channel;
    int handshaken;             /* the SSH transport is up */
    int broken;                 /* transport unusable or out of time: no goodbye */
    const char *err;
} ssh_call_t;

static apr_status_t ssh_fail(ssh_call_t *c, apr_status_t rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static apr_status_t ssh_fail(ssh_call_t *c, apr_status_t rv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    c->err = apr_psprintf(c->p, "ssh %s: %s", c->where, apr_pvsprintf(c->p, fmt, ap));
    va_end(ap);
    return rv;
}

/* libssh2's last message; it never holds key material or passphrases. */
static const char *ssh_last_error(ssh_call_t *c)
{
    char *msg = NULL;
    int len = 0;

    if (!c->session)
        return "no session";
    libssh2_session_last_error(c->session, &msg, &len, 0);
    return (msg && len > 0) ? apr_pstrmemdup(c->p, msg, (apr_size_t)len) : "unknown error";
}

static apr_status_t ssh_timeout(ssh_call_t *c, const char *doing)
{
    c->broken = 1;
    return ssh_fail(c, APR_TIMEUP, "timed out after %" APR_TIME_T_FMT " ms while %s",
                    (apr_time_t)apr_time_as_msec(c->timeout), doing);
}

/* Waits until the socket is ready in one of the directions libssh2 (or the
 * caller, with extra_dirs) is blocked on, or the deadline passes. */
static apr_status_t ssh_wait(ssh_call_t *c, int extra_dirs, const char *doing)
{
    apr_interval_time_t left = c->deadline - apr_time_now();
    apr_pollfd_t pfd;
    apr_int32_t n;
    apr_status_t rv;
    int dirs = libssh2_session_block_directions(c->session) | extra_dirs;

    if (left <= 0)
        return ssh_timeout(c, doing);
    memset(&pfd, 0, sizeof(pfd));
    pfd.p = c->tmp;
    pfd.desc_type = APR_POLL_SOCKET;
    pfd.desc.s = c->sock;
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        pfd.reqevents |= APR_POLLIN;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        pfd.reqevents |= APR_POLLOUT;
    if (!pfd.reqevents) {
        /* libssh2 said EAGAIN without a direction: look again shortly */
        pfd.reqevents = APR_POLLIN;
        if (left > 10000)
            left = 10000;
    }
    rv = apr_poll(&pfd, 1, &n, left);
    if (rv == APR_SUCCESS || APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_EINTR(rv))
        return APR_SUCCESS;     /* the caller retries; the deadline is checked above */
    c->broken = 1;
    return ssh_fail(c, rv, "waiting for the socket while %s: %pm", doing, &rv);
}

static apr_status_t ssh_connect(ssh_call_t *c)
{
    const ospab_ssh_conf_t *conf = c->conf;
    apr_sockaddr_t *sa;
    apr_status_t rv, last = APR_EGENERAL;

    rv = apr_sockaddr_info_get(&sa, conf->host, APR_UNSPEC, (apr_port_t)conf->port, 0, c->tmp);
    if (rv != APR_SUCCESS)
        return ssh_fail(c, rv, "cannot resolve %s: %pm", conf->host, &rv);
    for (; sa; sa = sa->next) {
        apr_socket_t *s;
        apr_interval_time_t left = c->deadline - apr_time_now();

        if (left <= 0)
            return ssh_timeout(c, "connecting");
        rv = apr_socket_create(&s, sa->family, SOCK_STREAM, APR_PROTO_TCP, c->tmp);
        if (rv != APR_SUCCESS) {
            last = rv;
            continue;
        }
        apr_socket_opt_set(s, APR_TCP_NODELAY, 1);
        apr_socket_timeout_set(s, left);        /* non-blocking connect + poll */
        rv = apr_socket_connect(s, sa);
        if (rv == APR_SUCCESS) {
            /* libssh2 does its own I/O on the descriptor, which must not block */
            apr_socket_opt_set(s, APR_SO_NONBLOCK, 1);
            c->sock = s;
            return apr_os_sock_get(&c->fd, s);
        }
        last = rv;
        apr_socket_close(s);
    }
    if (APR_STATUS_IS_TIMEUP(last))
        return ssh_timeout(c, "connecting");
    return ssh_fail(c, last, "cannot connect: %pm", &last);
}

/* Where the node's key comes from, for messages. */
static const char *ssh_key_source(const ssh_call_t *c)
{
    return c->conf->host_key ? "the host key registered for the node (ssh_host_key)"
                             : apr_pstrcat(c->p, "known_hosts file ", c->conf->known_hosts,
                                           NULL);
}

const char *ospab_ssh_host_key_problem(const char *key)
{
    static const char *const types[] = { "ssh-ed25519 ", "ecdsa-sha2-nistp256 ",
                                         "ecdsa-sha2-nistp384 ", "ecdsa-sha2-nistp521 ",
                                         "ssh-rsa ", NULL };
    const char *b64 = NULL, *s;
    size_t i;

    for (i = 0; types[i] && !b64; i++) {
        if (!strncmp(key, types[i], strlen(types[i])))
            b64 = key + strlen(types[i]);
    }
    if (!b64)
        return "must be TYPE BASE64 as known_hosts holds it (ssh-keyscan -t ed25519 NODE), "
               "TYPE one of ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa";
    for (s = b64; *s && (apr_isalnum(*s) || *s == '+' || *s == '/' || *s == '='); s++) {
    }
    if (s - b64 < 16 || (*s && *s != ' '))
        return "the key after its type must be base64 (a comment after it may follow)";
    return NULL;
}

/* Reads known_hosts and limits the key exchange to the host key types it
 * holds for the node. With none, every type is offered, so that the refusal
 * can name the key the node presented. */
static apr_status_t ssh_known_hosts(ssh_call_t *c)
{
    const char *file = ssh_key_source(c);
    const char *methods = NULL, *names = NULL;
    size_t i;
    int modern = 0;

    c->known = libssh2_knownhost_init(c->session);
    if (!c->known)
        return ssh_fail(c, APR_ENOMEM, "cannot set up the known_hosts check");
    if (c->conf->host_key) {
        /* the registered key as the one line of a known_hosts file for the node's name */
        const char *line = apr_pstrcat(c->tmp, c->kh_name, " ", c->conf->host_key, NULL);

        if (libssh2_knownhost_readline(c->known, line, strlen(line),
                                       LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0)
            return ssh_fail(c, APR_EINVAL, "the host key registered for %s cannot be read: %s",
                            c->kh_name, ssh_last_error(c));
    }
    else if (libssh2_knownhost_readfile(c->known, c->conf->known_hosts,
                                        LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0)
        return ssh_fail(c, APR_EACCES, "cannot read known_hosts file %s: %s",
                        c->conf->known_hosts, ssh_last_error(c));
    for (i = 0; i < SSH_NKEYTYPES; i++) {
        /* a one-byte key never matches; MISMATCH means an entry of this type exists */
        int rc = libssh2_knownhost_checkp(c->known, c->kh_name, -1, "", 1,
                                          LIBSSH2_KNOWNHOST_TYPE_PLAIN |
                                          LIBSSH2_KNOWNHOST_KEYENC_RAW |
                                          ssh_keytypes[i].knownhost_type, NULL);
        if (rc != LIBSSH2_KNOWNHOST_CHECK_MISMATCH && rc != LIBSSH2_KNOWNHOST_CHECK_MATCH)
            continue;
        methods = methods ? apr_pstrcat(c->tmp, methods, ",", ssh_keytypes[i].methods, NULL)
                          : ssh_keytypes[i].methods;
        names = names ? apr_pstrcat(c->p, names, ", ", ssh_keytypes[i].name, NULL)
                      : ssh_keytypes[i].name;
        if (ssh_keytypes[i].hostkey_type != LIBSSH2_HOSTKEY_TYPE_RSA &&
            ssh_keytypes[i].hostkey_type != LIBSSH2_HOSTKEY_TYPE_DSS)
            modern = 1;
    }
    c->kh_types = names;
    c->kh_sha1_only = names && !modern && LIBSSH2_VERSION_NUM < 0x010b00;
    if (methods && libssh2_session_method_pref(c->session, LIBSSH2_METHOD_HOSTKEY, methods) != 0)
        return ssh_fail(c, APR_EACCES, "%s holds for %s only host keys of types this libssh2 "
                        "cannot verify (%s)", file, c->kh_name, names);
    return APR_SUCCESS;
}

static apr_status_t ssh_check_host_key(ssh_call_t *c)
{
    const char *file = ssh_key_source(c);
    const char *key, *hash, *fp = "(no fingerprint)";
    const ssh_keytype_t *kt;
    size_t len = 0;
    int type = 0, rc;

    key = libssh2_session_hostkey(c->session, &len, &type);
    if (!key || !len)
        return ssh_fail(c, APR_EGENERAL, "the node sent no host key");
    kt = ssh_keytype_of(type);
    hash = libssh2_hostkey_hash(c->session, LIBSSH2_HOSTKEY_HASH_SHA256);
    if (hash)
        fp = ssh_fingerprint(c->p, (const unsigned char *)hash, 32);
    if (!kt)
        return ssh_fail(c, APR_EACCES, "host key of %s has an unsupported type (%d, %s); "
                        "refusing to connect", c->kh_name, type, fp);
    rc = libssh2_knownhost_checkp(c->known, c->kh_name, -1, key, len,
                                  LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
                                  kt->knownhost_type, NULL);
    switch (rc) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
        return APR_SUCCESS;
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        return ssh_fail(c, APR_EACCES, "HOST KEY MISMATCH: %s presented %s %s, which differs "
                        "from its entry in %s; refusing to connect (the node was reinstalled, "
                        "or someone is in between)", c->kh_name, kt->name, fp, file);
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        return ssh_fail(c, APR_EACCES, "unknown host key: %s (%s %s) is not in %s; refusing "
                        "to connect (verify the fingerprint on the node, then add it with "
                        "ssh-keyscan)", c->kh_name, kt->name, fp, file);
    default:
        return ssh_fail(c, APR_EGENERAL, "cannot check the host key of %s: %s", c->kh_name,
                        ssh_last_error(c));
    }
}

static apr_status_t ssh_authenticate(ssh_call_t *c)
{
    const ospab_ssh_conf_t *conf = c->conf;
    apr_file_t *f;
    apr_status_t rv;
    int rc;

    if (!conf->private_key_pem) {
        /* libssh2 reports an unreadable key as a generic failure: say which file */
        rv = apr_file_open(&f, conf->private_key, APR_FOPEN_READ, APR_OS_DEFAULT, c->tmp);
        if (rv != APR_SUCCESS)
            return ssh_fail(c, APR_EACCES, "cannot read private key %s: %pm",
                            conf->private_key, &rv);
        apr_file_close(f);
    }

    /* "" rather than NULL: libssh2 1.10 dereferences the passphrase of an
     * encrypted PEM key; with "" such a key fails to load, as it should */
    while ((rc = conf->private_key_pem
                 ? libssh2_userauth_publickey_frommemory(c->session, conf->user,
                                                         strlen(conf->user), NULL, 0,
                                                         conf->private_key_pem,
                                                         strlen(conf->private_key_pem), "")
                 : libssh2_userauth_publickey_fromfile_ex(c->session, conf->user,
                                                          (unsigned int)strlen(conf->user),
                                                          conf->public_key, conf->private_key,
                                                          "")) == LIBSSH2_ERROR_EAGAIN) {
        if ((rv = ssh_wait(c, 0, "authenticating")) != APR_SUCCESS)
            return rv;
    }
    switch (rc) {
    case 0:
        return APR_SUCCESS;
    case LIBSSH2_ERROR_AUTHENTICATION_FAILED:
    case LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
#if LIBSSH2_VERSION_NUM < 0x010b00
        if (ssh_key_is_rsa(c->tmp, conf->public_key ? conf->public_key : conf->private_key))
            return ssh_fail(c, APR_EACCES, "public key authentication as %s with key %s refused "
                            "by the node: it is an RSA key, and libssh2 " LIBSSH2_VERSION
                            " signs RSA keys with SHA-1 only (ssh-rsa), which OpenSSH 8.8 and "
                            "later refuse; use an Ed25519 key (ssh-keygen -t ed25519)",
                            conf->user, conf->private_key);
#endif
        return ssh_fail(c, APR_EACCES, "public key authentication as %s with key %s refused "
                        "by the node", conf->user, conf->private_key);
    case LIBSSH2_ERROR_FILE:
#ifdef LIBSSH2_ERROR_KEYFILE_AUTH_FAILED
    case LIBSSH2_ERROR_KEYFILE_AUTH_FAILED:
#endif
        return ssh_fail(c, APR_EACCES, "cannot use private key %s (unsupported format, or "
                        "protected by a passphrase): %s", conf->private_key, ssh_last_error(c));
    default:
        c->broken = 1;
        return ssh_fail(c, APR_EGENERAL, "authentication as %s failed: %s", conf->user,
                        ssh_last_error(c));
    }
}

/* Writes stdin_data and EOF while collecting output, until the command's side
 * reaches EOF. */
static apr_status_t ssh_run(ssh_call_t *c, const char *command, const char *stdin_data,
                            char *out, apr_size_t *out_len)
{
    LIBSSH2_CHANNEL *ch;
    apr_size_t off = 0, len = stdin_data ? strlen(stdin_data) : 0;
    char buf[OSPAB_SSH_READ_CHUNK];
    int eof_sent = 0, rc;
    apr_status_t rv;

    while (!(ch = libssh2_channel_open_session(c->session))) {
        if (libssh2_session_last_errno(c->session) != LIBSSH2_ERROR_EAGAIN) {
            c->broken = 1;
            return ssh_fail(c, APR_EGENERAL, "cannot open a channel: %s", ssh_last_error(c));
        }
        if ((rv = ssh_wait(c, 0, "opening a channel")) != APR_SUCCESS)
            return rv;
    }
    c->channel = ch;
    while ((rc = libssh2_channel_exec(ch, command)) == LIBSSH2_ERROR_EAGAIN) {
        if ((rv = ssh_wait(c, 0, "starting the command")) != APR_SUCCESS)
            return rv;
    }
    if (rc != 0)
        return ssh_fail(c, APR_EGENERAL, "the node refused to run the command: %s",
                        ssh_last_error(c));

    *out_len = 0;
    for (;;) {
        int progress = 0, dirs = 0, stream;

        if (off < len) {
            ssize_t n = libssh2_channel_write(ch, stdin_data + off, len - off);
            if (n > 0) {
                off += (apr_size_t)n;
                progress = 1;
            }
            else if (n == LIBSSH2_ERROR_EAGAIN) {
                dirs |= libssh2_session_block_directions(c->session);
            }
            else {
                /* the command closed its input early: what it says tells why */
                off = len;
                eof_sent = 1;
            }
        }
        if (off >= len && !eof_sent) {
            rc = libssh2_channel_send_eof(ch);
            if (rc == LIBSSH2_ERROR_EAGAIN) {
                dirs |= libssh2_session_block_directions(c->session);
            }
            else {
                eof_sent = 1;   /* or the channel is gone: the read below tells */
                progress = 1;
            }
        }
        for (stream = 0; stream <= SSH_EXTENDED_DATA_STDERR; stream++) {
            ssize_t n;
            while ((n = libssh2_channel_read_ex(ch, stream, buf, sizeof(buf))) > 0) {
                apr_size_t keep = (apr_size_t)n;
                if (keep > OSPAB_SSH_OUTPUT_MAX - *out_len)
                    keep = OSPAB_SSH_OUTPUT_MAX - *out_len;     /* the rest is dropped */
                memcpy(out + *out_len, buf, keep);
                *out_len += keep;
                progress = 1;
            }
            if (n == LIBSSH2_ERROR_EAGAIN)
                dirs |= libssh2_session_block_directions(c->session);
            else if (n < 0) {
                c->broken = 1;
                return ssh_fail(c, APR_EGENERAL, "lost the command's output: %s",
                                ssh_last_error(c));
            }
        }
        if (eof_sent && libssh2_channel_eof(ch))
            return APR_SUCCESS;
        if (!progress && (rv = ssh_wait(c, dirs, "running the command")) != APR_SUCCESS)
            return rv;
    }
}

/* Closes the channel and waits for the node's close, which carries the exit
 * status (or the signal that ended the command). */
static apr_status_t ssh_finish(ssh_call_t *c, int *exit_status)
{
    char *signame = NULL;
    size_t signame_len = 0;
    apr_status_t rv;
    int rc;

    while ((rc = libssh2_channel_close(c->channel)) == LIBSSH2_ERROR_EAGAIN)
        if ((rv = ssh_wait(c, 0, "closing the channel")) != APR_SUCCESS)
            return rv;
    while (rc == 0 && (rc = libssh2_channel_wait_closed(c->channel)) == LIBSSH2_ERROR_EAGAIN)
        if ((rv = ssh_wait(c, 0, "waiting for the exit status")) != APR_SUCCESS)
            return rv;
    if (rc != 0) {
        c->broken = 1;
        return ssh_fail(c, APR_EGENERAL, "no exit status: %s", ssh_last_error(c));
    }
    libssh2_channel_get_exit_signal(c->channel, &signame, &signame_len, NULL, NULL, NULL, NULL);
    if (signame) {
        const char *name = apr_pstrmemdup(c->p, signame, signame_len);
        libssh2_free(c->session, signame);
        return ssh_fail(c, APR_EGENERAL, "the command was killed by signal %s",
                        ssh_detail(c->p, name));
    }
    *exit_status = libssh2_channel_get_exit_status(c->channel);
    return APR_SUCCESS;
}

/* Frees everything in the order libssh2 needs; never blocks past a short
 * goodbye: after that the socket is shut down, so libssh2's own clean-up
 * finds it closed instead of waiting for the node. */
static void ssh_close(ssh_call_t *c)
{
    if (c->known)
        libssh2_knownhost_free(c->known);
    if (c->session) {
        if (c->handshaken && !c->broken) {
            apr_time_t until = apr_time_now() + OSPAB_SSH_BYE_MAX;
            if (until < c->deadline)
                c->deadline = until;
            if (c->channel) {
                while (libssh2_channel_free(c->channel) == LIBSSH2_ERROR_EAGAIN)
                    if (ssh_wait(c, 0, "closing") != APR_SUCCESS)
                        break;
                c->channel = NULL;      /* else session_free frees it */
            }
            while (libssh2_session_disconnect(c->session, "done") == LIBSSH2_ERROR_EAGAIN)
                if (ssh_wait(c, 0, "disconnecting") != APR_SUCCESS)
                    break;
        }
        if (c->sock)
            apr_socket_shutdown(c->sock, APR_SHUTDOWN_READWRITE);
        {
            /* with the socket shut down, EAGAIN cannot last; leak rather than spin */
            int tries = 0;
            while (libssh2_session_free(c->session) == LIBSSH2_ERROR_EAGAIN && ++tries < 100)
                ;
        }
    }
    apr_pool_destroy(c->tmp);   /* closes the socket */
}

static apr_status_t ssh_check_conf(ssh_call_t *c, const char *command)
{
    const ospab_ssh_conf_t *conf = c->conf;

    if (!conf || !conf->host || !*conf->host || !conf->user || !*conf->user)
        return APR_EINVAL;
    if (conf->port < 1 || conf->port > 65535)
        return ssh_fail(c, APR_EINVAL, "port must be 1..65535");
    if (!conf->private_key || !*conf->private_key)
        return ssh_fail(c, APR_EINVAL, "no private key configured");
    if ((!conf->known_hosts || !*conf->known_hosts) && !conf->host_key)
        return ssh_fail(c, APR_EINVAL, "no known_hosts file configured (host keys are always "
                        "checked)");
    if (conf->timeout_ms <= 0)
        return ssh_fail(c, APR_EINVAL, "timeout must be positive");
    if (!command || !*command)
        return ssh_fail(c, APR_EINVAL, "no command");
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------- API -- */

const char *ospab_ssh_set_host(apr_pool_t *p, ospab_ssh_conf_t *c, const char *hostport)
{
    const char *colon = strrchr(hostport, ':');
    const char *s;

    for (s = hostport; *s; ++s) {
        if (!apr_isgraph(*s)) {
            return "a host name or address, and :port";
        }
    }
    if (!*hostport) {
        return "a host name or address, and :port";
    }
    if (colon && !strchr(colon, ']') && (colon == strchr(hostport, ':') || *hostport == '[')) {
        c->host = apr_pstrndup(p, hostport, (apr_size_t)(colon - hostport));
        c->port = atoi(colon + 1);
        if (c->port < 1 || c->port > 65535 || !*c->host) {
            return apr_psprintf(p, "bad port in '%s'", hostport);
        }
    }
    else {
        c->host = hostport;
    }
    return NULL;
}

apr_status_t ospab_ssh_exec(apr_pool_t *p, const ospab_ssh_conf_t *conf, const char *command,
                            const char *stdin_data, int *exit_status, const char **output,
                            const char **err)
{
    ssh_call_t call, *c = &call;
    char *out = NULL, *name, *s;
    apr_size_t out_len = 0;
    apr_status_t rv;
    int rc;

    memset(c, 0, sizeof(*c));
    c->p = p;
    c->conf = conf;
    *exit_status = -1;
    *output = "";
    *err = NULL;
    c->where = (conf && conf->host && conf->user)
        ? apr_psprintf(p, "%s@%s:%d", conf->user, conf->host, conf->port) : "(unconfigured)";
    if ((rv = ssh_check_conf(c, command)) != APR_SUCCESS) {
        *err = c->err ? c->err : apr_psprintf(p, "ssh %s: host and user must be set", c->where);
        return rv;
    }
    pthread_once(&ssh_once, ssh_global_init);
    if (ssh_init_rc != 0) {
        *err = apr_psprintf(p, "ssh %s: libssh2_init failed (%d)", c->where, ssh_init_rc);
        return APR_EGENERAL;
    }
    if ((rv = apr_pool_create(&c->tmp, p)) != APR_SUCCESS) {
        *err = apr_psprintf(p, "ssh %s: out of memory", c->where);
        return rv;
    }
    c->timeout = (apr_interval_time_t)conf->timeout_ms * 1000;
    c->deadline = apr_time_now() + c->timeout;
    name = conf->port == 22 ? apr_pstrdup(p, conf->host)
                            : apr_psprintf(p, "[%s]:%d", conf->host, conf->port);
    for (s = name; *s; s++)     /* OpenSSH writes and compares host names in lower case */
        *s = (char)apr_tolower(*s);
    c->kh_name = name;

    c->session = libssh2_session_init_ex(NULL, NULL, NULL, NULL);
    if (!c->session) {
        rv = ssh_fail(c, APR_ENOMEM, "cannot create an SSH session");
        goto leave;
    }
    libssh2_session_set_blocking(c->session, 0);
    if ((rv = ssh_known_hosts(c)) != APR_SUCCESS)
        goto leave;
    if ((rv = ssh_connect(c)) != APR_SUCCESS)
        goto leave;

    while ((rc = libssh2_session_handshake(c->session, c->fd)) == LIBSSH2_ERROR_EAGAIN) {
        if ((rv = ssh_wait(c, 0, "in the SSH handshake")) != APR_SUCCESS)
            goto leave;
    }
    if (rc != 0) {
        c->broken = 1;
        rv = ssh_fail(c, APR_EGENERAL, "SSH handshake failed: %s%s%s%s%s", ssh_last_error(c),
                      c->kh_types ? " (offered only the host key types known_hosts holds "
                                    "for the node: " : "",
                      c->kh_types ? c->kh_types : "", c->kh_types ? ")" : "",
                      c->kh_sha1_only ? "; libssh2 " LIBSSH2_VERSION " verifies RSA host keys "
                      "only with SHA-1 signatures, which OpenSSH 8.8 and later no longer make: "
                      "record the node's Ed25519 key (ssh-keyscan -t ed25519)" : "");
        goto leave;
    }
    c->handshaken = 1;
    if ((rv = ssh_check_host_key(c)) != APR_SUCCESS)
        goto leave;
    if ((rv = ssh_authenticate(c)) != APR_SUCCESS)
        goto leave;

    out = apr_palloc(c->tmp, OSPAB_SSH_OUTPUT_MAX + 1);
    if ((rv = ssh_run(c, command, stdin_data, out, &out_len)) != APR_SUCCESS)
        goto leave;
    rv = ssh_finish(c, exit_status);

leave:
    if (out && out_len)
        *output = apr_pstrmemdup(p, out, out_len);
    if (rv != APR_SUCCESS)
        *err = c->err ? c->err : apr_psprintf(p, "ssh %s: failed", c->where);
    ssh_close(c);               /* may time out saying goodbye: that is no error */
    return rv;
}

apr_status_t ospab_ssh_set_root_password(apr_pool_t *p, const ospab_ssh_conf_t *conf,
                                         long vmid, const char *password, const char **err)
{
    const char *command, *output = "", *e = NULL;
    char *line;
    size_t pwlen, linelen;
    int status = -1;
    apr_status_t rv;

    *err = NULL;
    if (vmid < OSPAB_SSH_VMID_MIN || vmid > OSPAB_SSH_VMID_MAX) {
        *err = apr_psprintf(p, "vmid %ld is out of range (%ld..%ld)", vmid,
                            OSPAB_SSH_VMID_MIN, OSPAB_SSH_VMID_MAX);
        return APR_EINVAL;
    }
    if (!password || !*password) {
        *err = "the password is empty";
        return APR_EINVAL;
    }
    pwlen = strlen(password);
    if (pwlen > OSPAB_SSH_PASSWORD_MAX) {
        *err = apr_psprintf(p, "the password is longer than %d bytes", OSPAB_SSH_PASSWORD_MAX);
        return APR_EINVAL;
    }
    /* chpasswd reads "user:password" lines: a line break would end the password
     * (and could start a line for another user). A ':' is fine: chpasswd
     * splits at the first one. */
    if (strpbrk(password, "\r\n")) {
        *err = "the password must not contain a line break";
        return APR_EINVAL;
    }

    command = apr_psprintf(p, "pct exec %ld -- chpasswd", vmid);
    linelen = sizeof("root:") - 1 + pwlen + 2;
    /* not from a pool: pools hand memory back unwiped */
    line = malloc(linelen);
    if (!line) {
        *err = "out of memory";
        return APR_ENOMEM;
    }
    memcpy(line, "root:", 5);
    memcpy(line + 5, password, pwlen);
    memcpy(line + 5 + pwlen, "\n", 2);

    rv = ospab_ssh_exec(p, conf, command, line, &status, &output, &e);
    ssh_wipe(line, linelen);
    free(line);

    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(p, "CT %ld: %s", vmid, e);
        return rv;
    }
    if (status != 0) {
        *err = apr_psprintf(p, "CT %ld: `%s` on %s:%d exited with status %d: %s", vmid, command,
                            conf->host, conf->port, status,
                            *output ? ssh_detail(p, output) : "(no output)");
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}
