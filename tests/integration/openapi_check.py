"""docs/openapi.yaml as a checker of real answers (issue 16).

* `route_table()`: lib/ospab_route.c's ospab_api_routes[] as (method, pattern) pairs, read
  with a strict pattern: a line of the table that does not parse is an error, not a skip.
* `Document`: the YAML loaded (python3-yaml), `$ref`s resolved, (method, path) mapped to
  the documented operation by its path template, and `problems(...)`: what is wrong with
  one response (an undocumented status, a missing required header, a content type or a
  body that does not fit the schema, validated with jsonschema's Draft202012Validator,
  one compiled validator per schema).
* `ResponseCheck` (pytest plugin) and `watching()`: every response the integration tests
  receive through `requests` from the module's /api/ on one of the test Apaches is checked;
  a test that received one the document does not describe fails (conftest.py).

Paths the document does not have are checked too: under /api/ the module answers them
404 with the `Error` shape (components/responses/NotFound), and a documented path asked
with a method it does not have 405 with `Allow` (components/responses/MethodNotAllowed).
HEAD is GET's operation without a body.
"""

import contextlib
import json
import re
import threading
import time
import urllib.parse
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "openapi.yaml"
ROUTES_C = REPO / "lib" / "ospab_route.c"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# ------------------------------------------------------------------ the route table --

_TABLE = re.compile(r"^const ospab_route_t ospab_api_routes\[\] = \{\n(.*?)^\};", re.S | re.M)
_ROW = re.compile(r'\{ "(GET|POST|PUT|DELETE|PATCH)", "(/api(?:/(?:[a-z]+(?:-[a-z]+)*|\{id\}))+)", '
                  r'OSPAB_OP_[A-Z_]+, (?:NULL|"[a-z]+") \},')
_END = "{ NULL, NULL, OSPAB_OP_NONE, NULL }"
_COMMENT = re.compile(r"/\*.*\*/")


def route_table(path=ROUTES_C):
    """[(method, pattern), ...] of ospab_api_routes[], in table order. Raises ValueError for
    a line that is neither a route, a one-line comment, nor the closing NULL row."""
    m = _TABLE.search(Path(path).read_text())
    if not m:
        raise ValueError(f"{path}: no ospab_api_routes[] table")
    routes, ended = [], False
    for n, line in enumerate(m.group(1).splitlines(), 1):
        s = line.strip()
        if not s or _COMMENT.fullmatch(s):
            continue
        if ended:
            raise ValueError(f"{path}: table line {n} after the NULL row: {s!r}")
        if s == _END:
            ended = True
            continue
        row = _ROW.fullmatch(s)
        if not row:
            raise ValueError(f"{path}: table line {n} does not parse: {s!r}")
        routes.append((row.group(1), row.group(2)))
    if not ended:
        raise ValueError(f"{path}: the table has no closing {_END}")
    return routes


# ---------------------------------------------------------------------- the document --

def _reasons(error):
    """For a oneOf/anyOf error, the errors of the alternative that came closest (the fewest
    errors), recursively: "'status' is a required property" says more than "is not valid
    under any of the given schemas"."""
    if not error.context:
        return [error]
    alternatives = {}
    for e in error.context:
        alternatives.setdefault(e.relative_schema_path[0], []).append(e)
    closest = min(alternatives.values(), key=len)
    return [r for e in closest for r in _reasons(e)]


class Document:
    """The OpenAPI document, ready to check answers."""

    def __init__(self, path=DOC):
        self.path = Path(path)
        self.doc = yaml.safe_load(self.path.read_text())
        self._validators = {}
        self.operations = {}            # (METHOD, template) -> operation object
        self._templates = []            # (compiled path regex, template)
        for template, item in self.doc.get("paths", {}).items():
            item = self.deref(item)
            for method in HTTP_METHODS:
                if method in item:
                    self.operations[(method.upper(), template)] = item[method]
            self._templates.append((self._template_regex(template), template))

    # -- references ----------------------------------------------------------------------
    def pointer(self, ref):
        """The object a local reference ("#/components/...") names; KeyError if none."""
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise KeyError(f"not a local reference: {ref!r}")
        obj = self.doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(obj, list):
                obj = obj[int(part)]
            elif isinstance(obj, dict) and part in obj:
                obj = obj[part]
            else:
                raise KeyError(f"{ref}: no {part!r}")
        return obj

    def deref(self, obj):
        """A Reference Object followed to what it names (siblings such as a description
        only describe); other objects as they are."""
        seen = set()
        while isinstance(obj, dict) and "$ref" in obj:
            if obj["$ref"] in seen:
                raise KeyError(f"reference cycle at {obj['$ref']}")
            seen.add(obj["$ref"])
            obj = self.pointer(obj["$ref"])
        return obj

    # -- routes ----------------------------------------------------------------------------
    @staticmethod
    def _template_regex(template):
        """"/api/vps/{id}" -> the paths it stands for: an {id} is what lib/ospab_route.c's
        router takes (a positive decimal without leading zeros, at most 15 digits)."""
        parts = re.split(r"(\{[^}]+\})", template)
        rx = "".join("[1-9][0-9]{0,14}" if p == "{id}" else "[^/]+" if p.startswith("{")
                     else re.escape(p) for p in parts)
        return re.compile(rx)

    def match(self, method, path):
        """(template, operation) for a request: (template, None) when the path is
        documented but not with that method, (None, None) when it is not documented.
        HEAD is GET's operation."""
        method = "GET" if method == "HEAD" else method
        found = None
        for rx, template in self._templates:
            if rx.fullmatch(path):
                if (method, template) in self.operations:
                    return template, self.operations[(method, template)]
                found = template
        return found, None

    def expected_response(self, method, path, status):
        """(description of what was asked, the Response Object for status or None, the
        statuses documented)."""
        template, op = self.match(method, path)
        if template is None:
            return f"{method} {path} (no such route)", \
                {"404": self.pointer("#/components/responses/NotFound")}.get(str(status)), ["404"]
        if op is None:
            return f"{method} {template} (not a method of the path)", \
                {"405": self.pointer("#/components/responses/MethodNotAllowed")}.get(
                    str(status)), ["405"]
        responses = op.get("responses", {})
        code = str(status)
        resp = responses.get(code) or responses.get(code[0] + "XX") or responses.get("default")
        return f"{method} {template}", (self.deref(resp) if resp is not None else None), \
            sorted(responses)

    # -- schemas -------------------------------------------------------------------------
    def inlined(self, schema, _trail=()):
        """The schema with every $ref replaced by what it names (the document has no
        recursive schema), so that validating a list of a thousand records does not resolve
        the same references a thousand times."""
        if isinstance(schema, list):
            return [self.inlined(s, _trail) for s in schema]
        if not isinstance(schema, dict):
            return schema
        out = {k: self.inlined(v, _trail) for k, v in schema.items() if k != "$ref"}
        ref = schema.get("$ref")
        if ref is None:
            return out
        if ref in _trail:
            raise ValueError(f"recursive schema at {ref}: cannot be inlined")
        target = self.inlined(self.pointer(ref), _trail + (ref,))
        if not out:
            return target
        return {"allOf": [target], **out}       # $ref beside other keywords applies both

    def validator(self, schema):
        """A compiled Draft 2020-12 validator for a schema object of the document (once per
        schema)."""
        v = self._validators.get(id(schema))
        if v is None:
            v = jsonschema.Draft202012Validator(self.inlined(schema))
            self._validators[id(schema)] = (v, schema)      # keep schema alive with its id
            return v
        return v[0]

    def schema_errors(self, schema, instance, limit=5):
        """["<path in the instance>: <message>", ...] of the first `limit` errors."""
        errors = sorted((r for e in self.validator(schema).iter_errors(instance)
                         for r in _reasons(e)),
                        key=lambda e: list(map(str, e.absolute_path)))
        return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
                for e in errors[:limit]]

    # -- answers ---------------------------------------------------------------------------
    def problems(self, method, path, status, headers, body, check_body=True):
        """What is wrong with one answer, as sentences ([] when it conforms). headers: a
        case-insensitive mapping; body: bytes."""
        what, resp, documented = self.expected_response(method, path, status)
        if resp is None:
            return [f"{what}: status {status} is not documented (documented: "
                    f"{', '.join(documented)})"]
        out = []
        for name, h in (resp.get("headers") or {}).items():
            h = self.deref(h)
            value = headers.get(name)
            if value is None:
                if h.get("required"):
                    out.append(f"{what} -> {status}: header {name} is missing")
                continue
            if "schema" in h:
                out += [f"{what} -> {status}: header {name}: {e}"
                        for e in self.schema_errors(h["schema"], value)]
        content = resp.get("content") or {}
        ctype = headers.get("Content-Type", "")
        media = ctype.split(";")[0].strip().lower()
        if not content:
            if body:
                out.append(f"{what} -> {status}: a body where the document has none")
            return out
        if media not in content:
            out.append(f"{what} -> {status}: Content-Type {ctype!r} is not one of "
                       f"{', '.join(content)}")
            return out
        if method == "HEAD":
            if body:
                out.append(f"{what} -> {status}: HEAD answered with a body")
            return out
        if not check_body or "schema" not in content[media]:
            return out
        if media == "application/json" or media.endswith("+json"):
            try:
                instance = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                return out + [f"{what} -> {status}: the body is not JSON ({e}): {body[:200]!r}"]
            out += [f"{what} -> {status}: body{e}"
                    for e in self.schema_errors(content[media]["schema"], instance)]
        return out


# ----------------------------------------------------------- the tests' responses --

class ResponseCheck:
    """pytest plugin: every answer of the module the tests receive is checked against the
    document (`observe`); the test during which a non-conforming one arrived fails in the
    report of that phase (setup, call or teardown)."""

    name = "ospab-openapi-responses"

    def __init__(self, document, ports):
        self.doc = document
        self.ports = ports              # () -> the ports of the module's Apaches
        self.extra_ports = set()        # Apaches started outside this process (the demo)
        self.checked = 0
        self.seconds = 0.0              # the checks and loading the document: the overhead
        self.seen = set()               # (method, template) that answered
        self.pending = []               # (status, problems, body) since the last report
        self.lock = threading.Lock()    # tests send from threads of their own too

    def watch_port(self, port):
        self.extra_ports.add(int(port))

    def is_module(self, url):
        u = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(u.path)
        return (u.hostname in ("127.0.0.1", "localhost")
                and (path == "/api" or path.startswith("/api/"))
                and (u.port in self.extra_ports or u.port in self.ports()))

    def observe(self, response, stream=False):
        req = response.request
        if not self.is_module(req.url):
            return
        t0 = time.perf_counter()
        path = urllib.parse.unquote(urllib.parse.urlsplit(req.url).path)
        try:
            found = self.doc.problems(req.method, path, response.status_code, response.headers,
                                      b"" if stream else response.content,
                                      check_body=not stream)
        except Exception as e:          # the checker's own fault must show, not hide
            found = [f"{req.method} {path}: the OpenAPI check failed: {e!r}"]
        template, op = self.doc.match(req.method, path)
        with self.lock:
            if op is not None:
                self.seen.add(("GET" if req.method == "HEAD" else req.method, template))
            self.checked += 1
            self.seconds += time.perf_counter() - t0
            if found:
                self.pending.append((response.status_code, found, response.text[:500]))

    def take(self):
        with self.lock:
            found, self.pending = self.pending, []
        return found

    @staticmethod
    def explain(found):
        problems = "\n".join(f"* {p}" for _, ps, _ in found for p in ps)
        bodies = "\n".join(f"{status}: {body}" for status, _, body in found)
        return ("answers from /api/ that docs/openapi.yaml does not describe (fix the "
                f"document or the module):\n{problems}\n\nthe answers:\n{bodies}")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        self.report(outcome.get_result())

    def pytest_sessionfinish(self, session, exitstatus):
        # answers that came after the last test's report (a thread of its own still
        # running): no test to fail, so the session fails
        self.late = self.take()
        if self.late and session.exitstatus == 0:
            session.exitstatus = 1

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(self.summary())
        if getattr(self, "late", None):
            terminalreporter.write_line("after the last test, " + self.explain(self.late))

    def report(self, rep):
        """Fails rep (a TestReport) if answers that arrived during its phase did not
        conform."""
        found = self.take()
        if not found:
            return
        msg = self.explain(found)
        if rep.passed:
            rep.outcome = "failed"
            rep.longrepr = msg
        else:
            rep.sections.append(("docs/openapi.yaml", msg))

    def summary(self):
        unseen = sorted(set(self.doc.operations) - self.seen)
        line = (f"OpenAPI: {self.checked} answers from /api/ checked against docs/openapi.yaml "
                f"in {self.seconds:.2f} s; {len(self.seen)} of {len(self.doc.operations)} "
                "operations answered")
        if unseen:
            line += " (not: " + ", ".join(f"{m} {t}" for m, t in unseen) + ")"
        return line


def plugin_of(config, ports):
    """The session's ResponseCheck, registered with pytest once."""
    plugin = config.pluginmanager.get_plugin(ResponseCheck.name)
    if plugin is None:
        t0 = time.perf_counter()
        plugin = ResponseCheck(Document(), ports)
        plugin.seconds += time.perf_counter() - t0
        config.pluginmanager.register(plugin, ResponseCheck.name)
    return plugin


@contextlib.contextmanager
def watching(config, ports):
    """Within: every requests.Session.send (requests.get/post/... go through it) hands its
    response to the session's ResponseCheck."""
    import requests

    plugin = plugin_of(config, ports)
    send = requests.Session.send

    def checked_send(session, request, **kw):
        r = send(session, request, **kw)
        plugin.observe(r, stream=kw.get("stream", False))
        return r

    requests.Session.send = checked_send
    try:
        yield plugin
    finally:
        requests.Session.send = send
