/* ospab core: vps and user fields, record JSON, passwords. */
#include <string.h>
#include <stdlib.h>
#include <crypt.h>

#include <apr_strings.h>
#include <openssl/crypto.h>

#include "ospab_resource.h"
#include "ospab_json.h"
#include "ospab_util.h"

static const char *const vps_status[] = { "creating", "running", "stopped", "suspended", NULL };
static const char *const hypervisors[] = { "proxmox", "vmware", "hyperv", "kvm", "xen", NULL };
static const char *const kinds[] = { "lxc", "qemu", NULL };
static const char *const roles[] = { "user", "admin", NULL };

#define MAX_ID 9007199254740991LL /* 2^53-1: what JavaScript clients can hold */

const ospab_field_t ospab_vps_fields[OSPAB_VPS_NFIELDS] = {
    { "id", OSPAB_FT_INT, 1, MAX_ID, NULL, OSPAB_FF_KEY, NULL, NULL, NULL },
    { "external_id", OSPAB_FT_TEXT, 1, 128, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "name", OSPAB_FT_TEXT, 1, 255, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "status", OSPAB_FT_ENUM, 0, 0, vps_status, 0, "creating", NULL, NULL },
    { "ip_address", OSPAB_FT_IP, 0, 0, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "cpu", OSPAB_FT_INT, 1, 1024, NULL, OSPAB_FF_REQUIRED, NULL, "cores", NULL },
    { "ram", OSPAB_FT_INT, 128, 4194304, NULL, OSPAB_FF_REQUIRED, NULL, "MB",
      "did you send GB? multiply by 1024" },
    { "disk", OSPAB_FT_INT, 1, 1048576, NULL, OSPAB_FF_REQUIRED, NULL, "GB", NULL },
    { "os", OSPAB_FT_TEXT, 0, 100, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "user_id", OSPAB_FT_INT, 1, 2147483647, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "hypervisor", OSPAB_FT_ENUM, 0, 0, hypervisors, 0, "proxmox", NULL, NULL },
    { "node", OSPAB_FT_NODE, 0, 0, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "vmid", OSPAB_FT_INT, 100, 999999999, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "kind", OSPAB_FT_ENUM, 0, 0, kinds, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "tariff_id", OSPAB_FT_INT, 1, 2147483647, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "os_id", OSPAB_FT_INT, 1, 2147483647, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "created_at", OSPAB_FT_TEXT, 0, 0, NULL, OSPAB_FF_READONLY, NULL, NULL, NULL },
    { "updated_at", OSPAB_FT_TEXT, 0, 0, NULL, OSPAB_FF_READONLY, NULL, NULL, NULL },
};

const ospab_field_t ospab_user_fields[OSPAB_USER_NFIELDS] = {
    { "id", OSPAB_FT_INT, 1, 2147483647, NULL, OSPAB_FF_KEY | OSPAB_FF_KEY_CREATE,
      NULL, NULL, NULL },
    { "email", OSPAB_FT_EMAIL, 0, 0, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "name", OSPAB_FT_TEXT, 0, 255, NULL, 0, "", NULL, NULL },
    { "role", OSPAB_FT_ENUM, 0, 0, roles, 0, "user", NULL, NULL },
    { "enabled", OSPAB_FT_BOOL, 0, 0, NULL, 0, "1", NULL, NULL },
    { "password", OSPAB_FT_TEXT, 8, 256, NULL, 0, NULL, NULL, NULL },
    { "created_at", OSPAB_FT_TEXT, 0, 0, NULL, OSPAB_FF_READONLY, NULL, NULL, NULL },
    { "updated_at", OSPAB_FT_TEXT, 0, 0, NULL, OSPAB_FF_READONLY, NULL, NULL, NULL },
};

void ospab_vps_write(ospab_jw_t *w, apr_pool_t *p, ospab_row_t row, int provider)
{
    int i;

    ospab_jw_obj(w);
    for (i = 0; i < OSPAB_VPS_NFIELDS; ++i) {
        const ospab_field_t *f = &ospab_vps_fields[i];

        ospab_jw_key(w, f->name);
        if (i == OSPAB_VPS_CREATED_AT || i == OSPAB_VPS_UPDATED_AT) {
            ospab_jw_str(w, ospab_time_api(p, row[i]));
        }
        else if (f->type == OSPAB_FT_INT) {
            ospab_jw_int_text(w, row[i]);
        }
        else {
            ospab_jw_str(w, row[i]);
        }
    }
    /* only when set: a bound record keeps the shape seed 000 documents */
    if (provider && row[OSPAB_VPS_BINDING_NOTE]) {
        ospab_jw_key(w, "binding_note");
        ospab_jw_str(w, row[OSPAB_VPS_BINDING_NOTE]);
    }
    ospab_jw_obj_end(w);
}

json_t *ospab_vps_json(apr_pool_t *p, ospab_row_t row)
{
    /* one definition of the shape: the writer's, read back for callers that compose (the
     * sync API: the provider's view) */
    ospab_jw_t w;
    apr_size_t len;
    const char *text;

    ospab_jw_init(&w, p, 512);
    ospab_vps_write(&w, p, row, 1);
    text = ospab_jw_finish(&w, &len);
    return json_loadb(text, len, 0, NULL);
}

apr_status_t ospab_password_crypt(apr_pool_t *p, const char *password, const char *prefix,
                                  const char **hash)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd;
    char *h;

    *hash = NULL;
    /* NULL random bytes: libcrypt reads them from the kernel's CSPRNG */
    if (!crypt_gensalt_rn(prefix, 0, NULL, 0, setting, sizeof(setting))) {
        return APR_ENOTIMPL;
    }
    cd = apr_pcalloc(p, sizeof(*cd));
    h = crypt_r(password, setting, cd);
    if (!h || h[0] == '*') {
        memset(cd, 0, sizeof(*cd));
        return APR_EGENERAL;
    }
    *hash = apr_pstrdup(p, h);
    memset(cd, 0, sizeof(*cd));
    return APR_SUCCESS;
}

apr_status_t ospab_password_hash(apr_pool_t *p, const char *password, const char **hash)
{
    apr_status_t rv = ospab_password_crypt(p, password, "$y$", hash);

    return rv == APR_ENOTIMPL ? ospab_password_crypt(p, password, "$2b$", hash) : rv;
}

int ospab_password_verify(const char *password, const char *hash)
{
    struct crypt_data *cd;
    const char *h;
    int ok = 0;

    if (!password || !hash || !*hash) {
        return 0;
    }
    cd = calloc(1, sizeof(*cd));
    if (!cd) {
        return 0;
    }
    h = crypt_r(password, hash, cd);
    if (h && h[0] != '*' && strlen(h) == strlen(hash)) {
        ok = CRYPTO_memcmp(h, hash, strlen(hash)) == 0;
    }
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return ok;
}
