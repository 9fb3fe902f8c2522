"""The customer panel's files as Apache serves them with conf/ospab.conf's panel block
(issue 12 items 1 and 5), and what can be checked without a browser: the security headers,
caching, compression, the vendored files' sums, the catalogues, `make install`, and that the
whole documented conf/ospab.conf passes `apache2 -t`. The browser tests are
test_panel.py's. SQLite only (no database is involved beyond Apache's start).
"""
import gzip
import re
import subprocess

import pytest
import requests

import harness
from conftest import served
from panelconf import WWW, panel_conf

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
YEAR = "public, max-age=31536000, immutable"
OWN_JS = sorted(p for p in WWW.rglob("*.js") if "vendor" not in p.parts)


@pytest.fixture(scope="module")
def panel_db():
    return harness.prepare_database(harness.SqliteDatabase.create())


@pytest.fixture(scope="module")
def root(panel_db):
    """The panel at the site root, as the demo serves it."""
    yield from served(panel_db, panel_conf(at="/"))


@pytest.fixture(scope="module")
def prefixed(panel_db):
    """The panel at /panel/, exactly as conf/ospab.conf has it."""
    yield from served(panel_db, panel_conf(at="/panel"))


def get(apache, path, **headers):
    return requests.get(apache.url(path), headers=headers, timeout=30, allow_redirects=False)


def vendored():
    return sorted(l.split("  ", 1)[1] for l in
                  (WWW / "vendor" / "SHA256SUMS").read_text().splitlines())


def test_index_has_the_security_headers_and_is_never_stale(root):
    r = get(root, "/")
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-cache"
    assert "ETag" not in r.headers and "Last-Modified" in r.headers
    # revalidation answers 304 (mod_deflate's ETags would never match: none are sent)
    again = get(root, "/", **{"If-Modified-Since": r.headers["Last-Modified"],
                              "Accept-Encoding": "gzip"})
    assert again.status_code == 304, again.status_code


@pytest.mark.parametrize("page", ["/", "/console.html"])
def test_pages_load_only_files_of_the_panel(root, page):
    """No inline script or style, every script and stylesheet a file that is there; the
    console page (docs/console.md) has the same policy as the panel."""
    r = get(root, page)
    html = r.text
    assert r.headers["Content-Security-Policy"] == CSP
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script"
    assert "style=" not in html and "<style" not in html
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', html):
        if ref == "./":
            continue
        assert not re.match(r"^[a-z]+:", ref), f"{ref}: from another origin"
        assert get(root, "/" + ref).status_code == 200, ref


def test_vendor_is_cached_for_a_year_and_compressed(root):
    names = vendored()
    # noVNC is a tree of modules (vendor/novnc-<version>/core/...): cached like the rest
    assert {"preact-11.2.0.mjs", "xterm-6.0.0.mjs", "novnc-1.7.0/core/rfb.js"} <= set(names)
    assert len(names) == 63
    for name in names:
        r = requests.get(root.url("/vendor/" + name), headers={"Accept-Encoding": "gzip"},
                         timeout=30, stream=True)
        raw = r.raw.read()
        assert r.status_code == 200, name
        assert r.headers["Cache-Control"] == YEAR, (name, r.headers)
        assert r.headers["Content-Encoding"] == "gzip", name
        assert gzip.decompress(raw) == (WWW / "vendor" / name).read_bytes(), name
        ctype = r.headers["Content-Type"]
        assert ctype.startswith("text/css" if name.endswith(".css") else "text/javascript"), \
            (name, ctype)
        assert r.headers["Content-Security-Policy"] == CSP


def test_the_panels_own_modules_are_revalidated(root):
    for p in OWN_JS[:3] + [WWW / "panel.css", WWW / "settings.json"]:
        path = "/" + str(p.relative_to(WWW))
        r = get(root, path, **{"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["Cache-Control"] == "no-cache", path
        assert r.headers.get("Content-Encoding") == "gzip", path


def test_the_api_and_unknown_paths_stay_the_apis(root):
    """The panel at the root does not take /api/ over: JSON there, without its headers."""
    r = get(root, "/api/health")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert "Content-Security-Policy" not in r.headers
    r = get(root, "/api/no-such-route")
    assert r.status_code == 404 and r.json()["error"]
    assert get(root, "/no-such-file.js").status_code == 404


def test_the_conf_block_serves_the_panel_at_slash_panel(prefixed):
    r = get(prefixed, "/panel")
    assert r.status_code == 301 and r.headers["Location"].endswith("/panel/")
    r = get(prefixed, "/panel/")
    assert r.status_code == 200 and 'src="panel.js"' in r.text
    assert r.headers["Content-Security-Policy"] == CSP
    assert get(prefixed, "/panel/vendor/" + vendored()[0]).headers["Cache-Control"] == YEAR
    assert get(prefixed, "/api/health").status_code == 200


def test_vendored_files_match_their_sums():
    p = subprocess.run([str(harness.REPO / "scripts" / "vendor-www"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_every_file_of_www_is_installed():
    """Makefile.am lists www/ file by file (automake has no wildcards): a new file must
    join the list, or `make install` leaves it out."""
    text = (harness.REPO / "Makefile.am").read_text()
    listed = set(re.findall(r"^\s+(www/[\w./-]+)", text, re.M))
    files = {str(p.relative_to(harness.REPO)) for p in WWW.rglob("*") if p.is_file()}
    assert files - listed == set(), "not in Makefile.am: " + " ".join(sorted(files - listed))
    assert listed - files == set(), "gone from www/: " + " ".join(sorted(listed - files))


def catalogue(lang):
    """The keys of www/i18n/<lang>.js (one 'key': value per line)."""
    text = (WWW / "i18n" / f"{lang}.js").read_text()
    return set(re.findall(r"^  '([a-zA-Z]+(?:\.[\w]+)+)':", text, re.M))


def test_both_catalogues_have_every_text():
    ru, en = catalogue("ru"), catalogue("en")
    assert len(en) > 150
    assert ru == en, {"only in ru": sorted(ru - en), "only in en": sorted(en - ru)}
    used = set()
    for p in OWN_JS:
        used |= set(re.findall(r"\bt\('([a-zA-Z]+(?:\.\w+)+)'", p.read_text()))
    assert used and used - en == set(), sorted(used - en)
    # keys made from API values: every value the panel knows has its words
    for prefix, values in {
        "status": ["creating", "running", "stopped", "suspended", "error", "deleting",
                   "missing"],
        "action": ["create", "start", "stop", "restart", "reboot", "delete", "password",
                   "resize", "snapshot", "delsnapshot", "rollback"],
        "done": ["start", "stop", "restart", "reboot", "delete", "password", "resize",
                 "snapshot", "delsnapshot", "rollback"],
        "task": ["queued", "running", "ok", "error"],
        "power": ["start", "stop", "restart", "reboot"],
        "graph.tf": ["hour", "day", "week", "month", "year"],
        "live": ["connecting", "live", "offline"],
        "alert": ["cpu", "memory", "disk"],
    }.items():
        missing = [v for v in values if f"{prefix}.{v}" not in en]
        assert not missing, (prefix, missing)


def test_api_data_is_rendered_as_text():
    """No HTML is ever made from strings: Preact + htm set text, never markup."""
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|dangerouslySetInnerHTML|"
                           r"document\.write|\beval\(|new Function|setAttribute\(\s*'style'")
    for p in OWN_JS:
        m = forbidden.search(p.read_text())
        assert not m, f"{p.relative_to(harness.REPO)}: {m.group(0)}"
        assert not re.search(r"\bstyle=\$\{", p.read_text()), f"{p}: a style attribute"


def test_the_whole_documented_conf_passes_configtest(panel_db):
    """conf/ospab.conf as shipped (the secrets' paths and the panel's directory replaced by
    files of this run): `apache2 -t` with the modules a2enmod enables for it."""
    d = harness.make_run_dir("conftest-")
    for name in ("sync.key", "jwt.key"):
        harness.write_private(d / name, "k" * 64)
    text = (harness.REPO / "conf" / "ospab.conf").read_text()
    text = (text.replace("/etc/ospab/sync.key", str(d / "sync.key"))
                .replace("/etc/ospab/jwt.key", str(d / "jwt.key"))
                .replace("/usr/local/share/ospab-panel/www", str(WWW)))
    (d / "ospab.conf").write_text(text)
    mods = harness.APACHE_MODULES
    a = harness.Apache(None, load_dbd=False, key_directive="", jwt_directives=[],
                       extra_conf=[f"LoadModule dbd_module {mods}/mod_dbd.so",
                                   f"LoadModule proxy_module {mods}/mod_proxy.so",
                                   f"LoadModule proxy_http_module {mods}/mod_proxy_http.so",
                                   *[f"LoadModule {m}_module {mods}/mod_{m}.so"
                                     for m in ("alias", "dir", "headers", "filter",
                                               "deflate")],
                                   f'Include "{d / "ospab.conf"}"'])
    rc, out = a.configtest()
    assert rc == 0 and "Syntax OK" in out, out


def test_make_install_puts_the_panel_in_datadir():
    """`make install` (DESTDIR): www/ under $(datadir)/ospab-panel/www, the conf's path
    rewritten to it, and a provider's settings.json kept on the next install."""
    dest = harness.make_run_dir("install-")
    run = lambda: subprocess.run(["make", "install", f"DESTDIR={dest}"],  # noqa: E731
                                 cwd=harness.REPO, capture_output=True, text=True, timeout=600)
    p = run()
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    share = next(dest.rglob("ospab-panel/www"))
    for f in ("index.html", "panel.js", "js/views/server.js", "i18n/ru.js",
              "vendor/SHA256SUMS", "settings.json") + tuple("vendor/" + n for n in vendored()):
        assert (share / f).is_file(), f
    conf = next(dest.rglob("mods-available/ospab.conf")).read_text()
    assert f'Alias "/panel" "{str(share)[len(str(dest)):]}"' in conf
    (share / "settings.json").write_text('{"productName": "Provider"}\n')
    assert run().returncode == 0
    assert "Provider" in (share / "settings.json").read_text()
