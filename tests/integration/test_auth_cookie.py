"""The browser's session (issue 12, docs/auth.md "Browsers: the refresh cookie"): a login with
"session": "cookie" answers without a refresh token in JSON and sets an HttpOnly, SameSite
cookie scoped to /api/auth/; /refresh and /logout take it when their body names no
refreshToken, only from the site's own Origin; rotation and reuse detection are the JSON
flow's. The JSON flow itself is unchanged (test_auth.py checks it in full; here: side by
side with the cookie). Each test once on SQLite and once on MariaDB.
"""

import re
import secrets

import pytest

from conftest import Api, create_user
from test_auth import (LOGIN, LOGIN_KEYS, LOGOUT, REFRESH, REUSED, error_is, fresh_address,
                       http, me, password)

COOKIE = "ospab_refresh"
TTL = 2592000                      # OspabRefreshTokenTTL's default
SET_COOKIE = re.compile(r"^ospab_refresh=([A-Za-z0-9_-]*); Path=/api/auth/; Max-Age=(\d+); "
                        r"HttpOnly; SameSite=Strict(; Secure)?$")
CROSS = {"error": "the refresh cookie is accepted from this site's own pages only (Origin)"}


def origin(apache):
    return f"http://127.0.0.1:{apache.port}"


def user(apache):
    return create_user(Api(apache), password=password())


def set_cookie(r):
    """(token, max-age, secure) of the answer's one Set-Cookie header; None without one."""
    values = r.raw.headers.getlist("Set-Cookie")
    if not values:
        return None
    assert len(values) == 1, values
    m = SET_COOKIE.match(values[0])
    assert m, values[0]
    return m.group(1), int(m.group(2)), bool(m.group(3))


def cookie_login(apache, u, headers=None, **kw):
    h = {"Origin": origin(apache)}
    h.update(headers or {})
    return http(apache, "POST", LOGIN, json={"email": u["email"], "password": u["password"],
                                             "session": "cookie"}, headers=h, **kw)


def with_cookie(apache, path, token, body=b"{}", own_origin=True, headers=None):
    h = {"Cookie": f"{COOKIE}={token}"}
    if own_origin:
        h["Origin"] = origin(apache)
    h.update(headers or {})
    if body is None:                     # no body at all, no Content-Type
        return http(apache, "POST", path, headers=h)
    return http(apache, "POST", path, data=body, headers=h)


def test_cookie_login_keeps_the_refresh_token_out_of_json(apache):
    u = user(apache)
    r = cookie_login(apache, u)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == LOGIN_KEYS - {"refreshToken"}, body
    assert body["tokenType"] == "Bearer" and body["user"]["id"] == u["id"]
    token, max_age, secure = set_cookie(r)
    assert len(token) >= 40 and max_age == TTL and not secure     # plain http: no Secure
    assert r.headers["Cache-Control"] == "no-store"
    assert me(apache, body["accessToken"]).json()["id"] == u["id"]


def test_the_json_flow_is_unchanged(apache):
    """No "session" (or "session": "token"): the refresh token in JSON, no cookie; a refresh
    with the JSON token answers JSON too, even when a cookie comes along."""
    u = user(apache)
    for extra in ({}, {"session": "token"}):
        r = http(apache, "POST", LOGIN, json={"email": u["email"], "password": u["password"],
                                              **extra})
        assert r.status_code == 200 and set(r.json()) == LOGIN_KEYS, r.text
        assert set_cookie(r) is None
    first = r.json()["refreshToken"]
    other = set_cookie(cookie_login(apache, u))[0]
    # the body's token wins over the cookie, without any Origin
    r = with_cookie(apache, REFRESH, other, body=b'{"refreshToken":"%s"}' % first.encode(),
                    own_origin=False)
    assert r.status_code == 200 and set(r.json()) == LOGIN_KEYS, r.text
    assert set_cookie(r) is None
    # and the cookie's login was not touched: it refreshes as usual
    r = with_cookie(apache, REFRESH, other)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("value", ["Cookie", "", 1, None, ["cookie"]])
def test_session_must_be_cookie_or_token(apache, value):
    u = user(apache)
    r = http(apache, "POST", LOGIN, json={"email": u["email"], "password": u["password"],
                                          "session": value}, source=fresh_address())
    error_is(r, 400, 'session must be "cookie" or "token"')


def test_refresh_with_the_cookie_rotates_it(apache, database):
    u = user(apache)
    r = cookie_login(apache, u)
    t1 = set_cookie(r)[0]
    seen = {t1}
    current = t1
    for body in (b"{}", None, b"{}"):          # {} or no body at all
        r = with_cookie(apache, REFRESH, current, body=body)
        assert r.status_code == 200, r.text
        assert set(r.json()) == LOGIN_KEYS - {"refreshToken"}, r.json()
        token, max_age, _ = set_cookie(r)
        assert token not in seen and max_age == TTL
        seen.add(token)
        current = token
        assert me(apache, r.json()["accessToken"]).json()["id"] == u["id"]
    rows = database.query("SELECT used_at, revoked_at FROM refresh_tokens WHERE user_id = ? "
                          "ORDER BY id", [u["id"]])
    assert [r["used_at"] is not None for r in rows] == [True, True, True, False], rows


def test_refresh_cookie_reuse_revokes_the_login(apache):
    """A spent cookie presented again (a stolen copy) ends the whole login, as in JSON."""
    u = user(apache)
    login = cookie_login(apache, u).json()
    t1 = set_cookie(cookie_login(apache, u))[0]
    t2 = set_cookie(with_cookie(apache, REFRESH, t1))[0]
    r = with_cookie(apache, REFRESH, t1)
    error_is(r, 401, REUSED)
    assert set_cookie(r) == ("", 0, False), "the browser is told to forget the cookie"
    error_is(with_cookie(apache, REFRESH, t2), 401, "refresh token revoked")
    # the other login of the user (another family) is untouched
    assert me(apache, login["accessToken"]).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Origin": "https://evil.example"},
                                     {"Origin": "null"},
                                     {"Origin": "http://127.0.0.1"},          # another port
                                     {"Origin": "https://127.0.0.1:{port}"}])  # another scheme
def test_the_cookie_is_refused_from_other_origins(apache, headers):
    """Without this site's own Origin a cookie request is 403, for refresh and logout, and
    the cookie is neither spent nor revoked."""
    u = user(apache)
    r = cookie_login(apache, u)
    token, access = set_cookie(r)[0], r.json()["accessToken"]
    h = {k: v.format(port=apache.port) for k, v in headers.items()}
    for path in (REFRESH, LOGOUT):
        r = with_cookie(apache, path, token, own_origin=False, headers=h)
        assert r.status_code == 403 and r.json() == CROSS, r.text
        assert set_cookie(r) is None
    assert me(apache, access).status_code == 200
    r = with_cookie(apache, REFRESH, token)
    assert r.status_code == 200, r.text


def test_cookie_login_from_another_origin_is_refused(apache):
    """A page elsewhere cannot log a browser in (login CSRF); without any Origin (not a
    browser) the cookie login works."""
    u = user(apache)
    r = cookie_login(apache, u, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json() == CROSS, r.text
    assert set_cookie(r) is None
    r = http(apache, "POST", LOGIN, json={"email": u["email"], "password": u["password"],
                                          "session": "cookie"})
    assert r.status_code == 200 and set_cookie(r), r.text


def test_logout_with_the_cookie(apache):
    u = user(apache)
    r = cookie_login(apache, u)
    token, access = set_cookie(r)[0], r.json()["accessToken"]
    r = with_cookie(apache, LOGOUT, token, body=None)
    assert r.status_code == 200 and r.json() == {"status": "success", "message": "logged out"}
    assert set_cookie(r) == ("", 0, False)
    r = me(apache, access)
    assert r.status_code == 401 and "session ended" in r.json()["error"], r.text
    error_is(with_cookie(apache, REFRESH, token), 401, "refresh token revoked")
    # an unknown or already ended cookie: still logged out, still forgotten
    r = with_cookie(apache, LOGOUT, "unknown-" + secrets.token_urlsafe(16))
    assert r.status_code == 200 and set_cookie(r) == ("", 0, False)


def test_bad_cookies(apache):
    """A cookie that names no login is 401 and forgotten; an empty one is no cookie (the body
    must then name the token, as before)."""
    r = with_cookie(apache, REFRESH, "no-such-" + secrets.token_urlsafe(16))
    error_is(r, 401, "invalid refresh token")
    assert set_cookie(r) == ("", 0, False)
    r = with_cookie(apache, REFRESH, "")
    error_is(r, 400, "refreshToken is required")
    r = with_cookie(apache, REFRESH, "x" * 600)
    error_is(r, 400, "refreshToken is required")
    # without any cookie, an empty body stays what it was
    r = http(apache, "POST", REFRESH, data=b"{}")
    error_is(r, 400, "refreshToken is required")


def test_secure_cookie_over_https(start_apache):
    """Behind TLS (here: ServerName https://..., as behind a TLS-terminating proxy) the
    cookie is Secure, and the site's origin is the https one."""
    a = start_apache(extra_conf=["ServerName https://127.0.0.1"])
    u = create_user(Api(a), password=password())
    own = {"Origin": f"https://127.0.0.1:{a.port}"}
    r = cookie_login(a, u, headers=own)
    token, _, secure = set_cookie(r)
    assert secure, r.raw.headers.getlist("Set-Cookie")
    r = with_cookie(a, REFRESH, token, own_origin=False, headers=own)
    assert r.status_code == 200 and set_cookie(r)[2], r.text
    r = with_cookie(a, REFRESH, set_cookie(r)[0])         # http://... is another origin now
    assert r.status_code == 403, r.text
