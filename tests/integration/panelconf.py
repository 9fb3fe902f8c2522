"""The customer panel's Apache lines (issue 12), for the tests and scripts/demo: exactly the
block between "# panel:begin" and "# panel:end" of conf/ospab.conf, with the installed path
replaced by this tree's www/ and, for the demo, the Alias (and OspabPanelURL, where the
console's links point) moved to the site root. Plain Python, no pytest.

    from panelconf import panel_conf
    harness.Apache(db, extra_conf=panel_conf(at="/"))
"""
import re

import harness

WWW = harness.REPO / "www"
CONF = harness.REPO / "conf" / "ospab.conf"
INSTALLED = "/usr/local/share/ospab-panel/www"
# what the block needs besides the harness's own modules (mod_mime, mod_authz_core)
MODULES = ("alias", "dir", "headers", "filter", "deflate")


def block():
    """The panel's lines of conf/ospab.conf, as written there."""
    text = CONF.read_text()
    m = re.search(r"^\s*# panel:begin\n(.*?)^\s*# panel:end\n", text, re.S | re.M)
    if not m:
        raise harness.HarnessError("conf/ospab.conf has no panel:begin/panel:end block")
    return [line.strip() for line in m.group(1).splitlines()
            if line.strip() and not line.strip().startswith("#")]


def panel_conf(www=WWW, at="/", modules=True):
    """Lines serving `www` at URL path `at` ("/" or "/panel")."""
    lines = []
    if modules:
        lines += [f"LoadModule {m}_module {harness.APACHE_MODULES}/mod_{m}.so" for m in MODULES]
    for line in block():
        if line.startswith("Alias "):
            line = (f'Alias "/" "{www}/"' if at == "/" else f'Alias "{at}" "{www}"')
        elif line.startswith("OspabPanelURL "):
            line = f"OspabPanelURL {at.rstrip('/')}/"
        lines.append(line.replace(INSTALLED, str(www)))
    return lines
