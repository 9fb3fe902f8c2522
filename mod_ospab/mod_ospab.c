/* mod_ospab: VPS control-panel API inside Apache httpd.
 * This file holds only the module record and the hook registration; see
 * ospab_mod_config.c (directives), ospab_mod_handler.c (routes) and handle_*.c. */
#include "mod_ospab.h"

static void ospab_mod_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(ospab_mod_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(ospab_mod_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(ospab_mod_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(ospab_mod_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(ospab_mod_translate_name, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(ospab_mod_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(ospab_mod_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* the live-push budget answers before mod_proxy's handler takes a worker for long;
     * session ids leave the request before mod_log_config writes it */
    ap_hook_handler(ospab_mod_live_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_log_transaction(ospab_mod_live_log, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_log_transaction(ospab_mod_metrics_log, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(ospab_mod_metrics_handler, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_insert_error_filter(ospab_mod_insert_error_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ospab_mod_register_error_filter();
}

/* spelled out rather than AP_DECLARE_MODULE: mod_ospab.h already declares the log index */
module AP_MODULE_DECLARE_DATA ospab_module = {
    STANDARD20_MODULE_STUFF,
    ospab_mod_create_dir_conf,  /* per-directory config (OspabLivePush, OspabMetrics) */
    ospab_mod_merge_dir_conf,   /* merge per-directory config */
    ospab_mod_create_srv_conf,  /* per-server config */
    ospab_mod_merge_srv_conf,   /* merge per-server config */
    ospab_mod_cmds,             /* directives */
    ospab_mod_register_hooks,
    AP_MODULE_FLAG_NONE
};
