/* libFuzzer: ospab_text_ok, ospab_time_api and ospab_parse_id on arbitrary strings.
 * The first two bytes pick text_ok's min and max character counts. */
#include "fuzz_common.h"
#include "ospab_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_size_t min = 0, max = 255;
    const char *s, *t;
    apr_int64_t id;

    if (size >= 2) {
        min = data[0] % 8;
        max = data[1];
        data += 2;
        size -= 2;
    }
    s = fuzz_cstr(data, size);
    (void)ospab_text_ok(s, min, max);
    (void)ospab_text_ok(s, 0, (apr_size_t)-1);
    t = ospab_time_api(fuzz_pool, s);
    if (t != s && (!t || strlen(t) != 24)) {
        abort();   /* reformatted: "YYYY-MM-DDTHH:MM:SS.mmmZ"; else s itself comes back */
    }
    if (ospab_parse_id(s, &id) == 0 && id < 0) {
        abort();
    }
    apr_pool_clear(fuzz_pool);
    return 0;
}
