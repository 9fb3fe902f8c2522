/* libFuzzer: ospab_sshkey_parse on arbitrary bytes (NULs included, as a JSON string may
 * carry them). An accepted key must come back as itself: its stored line parses again to
 * the same type, fingerprint and line. */
#include "fuzz_common.h"
#include "ospab_sshkeys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ospab_sshkey_t k, again;
    const char *s = fuzz_cstr(data, size);

    if (ospab_sshkey_parse(fuzz_pool, s, size, &k) == NULL) {
        if (!k.type || !k.fingerprint || strncmp(k.fingerprint, "SHA256:", 7)
            || strlen(k.fingerprint) != 50
            || ospab_sshkey_parse(fuzz_pool, k.line, strlen(k.line), &again) != NULL
            || strcmp(again.line, k.line) || strcmp(again.fingerprint, k.fingerprint)
            || strcmp(again.type, k.type)) {
            abort();
        }
    }
    apr_pool_clear(fuzz_pool);
    return 0;
}
