#!/usr/bin/python3
"""Check pvesim against the official Proxmox VE API schema.

* ``check_routes``: every path and method in pvesim's route table exists in the
  schema, with the same ``proxyto`` and the same permission check (the route's
  ``perm`` is the schema's ``permissions.check``; routes without one are
  ``"user": "all"``, or ``"world"`` when they need no authentication); every
  parameter the simulator accepts exists there with the same type, format (named
  or property string, key by key), range, length, enum, pattern and "requires";
  and every parameter the schema defines for a served method is accepted by the
  simulator.
* ``check_returns``: a response's ``data`` against the method's ``returns``
  schema (types, required properties, enums, patterns).

The schema is pve-api-schema-full.json.gz (from pve-docs api-viewer/apidata.js)
or the subset file; it is looked up in $PVE_API_SCHEMA, then in
<repo>/../shared/pve-api/ and /work/shared/pve-api/.

Run ``/usr/bin/python3 tests/pvesim/schema_check.py`` for a report.
"""

import argparse
import gzip
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pveparams import FORMATS, NAMED_PROPSTR, perl_regex  # noqa: E402

SCHEMA_NAMES = ("pve-api-schema-full.json.gz", "pve-api-schema-subset.json")


def schema_candidates():
    env = os.environ.get("PVE_API_SCHEMA")
    if env:
        yield env
    repo = os.path.dirname(os.path.dirname(HERE))
    for base in (os.path.join(os.path.dirname(repo), "shared", "pve-api"),
                 "/work/shared/pve-api"):
        for name in SCHEMA_NAMES:
            yield os.path.join(base, name)


def find_schema():
    for path in schema_candidates():
        if os.path.exists(path):
            return path
    raise FileNotFoundError("official PVE API schema not found; set PVE_API_SCHEMA "
                            "(tried: %s)" % ", ".join(schema_candidates()))


def load_schema(path=None):
    """{path: {METHOD: method info}} from either schema file layout."""
    path = path or find_schema()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        raw = json.load(f)
    if isinstance(raw, dict):                       # the subset: {path: {METHOD: info}}
        return raw
    flat = {}

    def walk(nodes):
        for n in nodes:
            flat[n["path"]] = n.get("info", {})
            walk(n.get("children", []))
    walk(raw)                                       # apidata.js: a tree of nodes
    return flat


# --------------------------------------------------------------------------
# Parameters

def _num_equal(a, b):
    if a is None or b is None:
        return a is None and b is None
    return float(a) == float(b)


def compare_spec(ours, theirs, where):
    """Differences between one pvesim Spec and one schema property."""
    problems = []
    if ours.type != theirs.get("type"):           # None for an alias key on both sides
        problems.append("%s: type %s, schema says %s" % (where, ours.type, theirs.get("type")))
        return problems
    if ours.optional != bool(theirs.get("optional")):
        problems.append("%s: optional=%s, schema says %s" % (
            where, ours.optional, bool(theirs.get("optional"))))
    for attr, key in (("minimum", "minimum"), ("maximum", "maximum")):
        if not _num_equal(getattr(ours, attr), theirs.get(key)):
            problems.append("%s: %s %r, schema says %r" % (where, key, getattr(ours, attr),
                                                          theirs.get(key)))
    for attr in ("minLength", "maxLength", "pattern", "requires", "alias", "keyAlias"):
        if getattr(ours, attr) != theirs.get(attr):
            problems.append("%s: %s %r, schema says %r" % (where, attr, getattr(ours, attr),
                                                          theirs.get(attr)))
    if ours.enum != theirs.get("enum"):
        problems.append("%s: enum %r, schema says %r" % (where, ours.enum, theirs.get("enum")))
    if bool(ours.default_key) != bool(theirs.get("default_key")):
        problems.append("%s: default_key differs" % where)
    fmt = theirs.get("format")
    if isinstance(ours.format, dict) or isinstance(fmt, dict):
        if not (isinstance(ours.format, dict) and isinstance(fmt, dict)):
            problems.append("%s: property-string format on one side only" % where)
        else:
            problems += compare_props(ours.format, fmt, where)
    elif ours.format != fmt:
        problems.append("%s: format %r, schema says %r" % (where, ours.format, fmt))
    return problems


def compare_props(ours, theirs, where):
    """Both directions: accepted but not in the schema, and in the schema but not accepted."""
    problems = []
    for name, spec in ours.items():
        if name not in theirs:
            problems.append("%s %s: not in the schema" % (where, name))
        else:
            problems += compare_spec(spec, theirs[name], "%s %s" % (where, name))
    for name in theirs:
        if name not in ours:
            problems.append("%s %s: in the schema but not accepted by pvesim" % (where, name))
    return problems


def check_routes(routes, schema):
    """All differences between pvesim's route table and the official schema."""
    problems = []
    seen = set()
    for r in routes:
        where = "%s %s" % (r.method, r.path)
        if (r.method, r.path) in seen:
            problems.append("%s: declared twice" % where)
        seen.add((r.method, r.path))
        info = schema.get(r.path, {}).get(r.method)
        if info is None:
            problems.append("%s: not in the schema" % where)
            continue
        if (info.get("proxyto") or None) != r.proxyto:
            problems.append("%s: proxyto %r, schema says %r" % (where, r.proxyto,
                                                               info.get("proxyto")))
        problems += compare_permissions(r, info.get("permissions") or {}, where)
        params = info.get("parameters", {})
        if params.get("additionalProperties", 0):
            problems.append("%s: schema allows additional properties" % where)
        problems += compare_props(r.params, params.get("properties", {}), where)
    return problems


def compare_permissions(route, perms, where):
    """The route's permission check against the schema's ``permissions``."""
    problems = []
    check = perms.get("check")
    if check is not None:
        if route.perm != check:
            problems.append("%s: permission check %r, schema says %r" % (where, route.perm,
                                                                        check))
    elif route.perm is not None:
        problems.append("%s: permission check %r, schema has none (user %r)" % (
            where, route.perm, perms.get("user")))
    elif perms.get("user") not in ("all", "world"):
        problems.append("%s: schema permissions %r not simulated" % (where, perms))
    if (perms.get("user") == "world") == route.auth:
        problems.append("%s: auth=%s, schema says user %r" % (where, route.auth,
                                                             perms.get("user")))
    return problems


def privileges_in_schema(schema):
    """Every privilege name the schema's permission checks and descriptions use."""
    found = set()

    def walk(check):
        if isinstance(check, list):
            if len(check) >= 3 and check[0] == "perm" and isinstance(check[2], list):
                found.update(check[2])
            for item in check:
                walk(item)
    for methods in schema.values():
        for info in methods.values():
            perms = info.get("permissions") or {}
            walk(perms.get("check"))
            found.update(re.findall(r"'([A-Z][A-Za-z]+\.[A-Za-z.]+)'",
                                    perms.get("description", "")))
    return found


def unenforced_formats(routes):
    """Named formats the simulator accepts without checking (informational)."""
    found = set()

    def visit(props):
        for spec in props.values():
            if isinstance(spec.format, dict):
                visit(spec.format)
            elif spec.format and spec.format not in FORMATS and \
                    spec.format not in NAMED_PROPSTR:
                found.add(spec.format)
    for r in routes:
        visit(r.params)
    return sorted(found)


# --------------------------------------------------------------------------
# Responses

def check_returns(schema, method, path, data, allow_numeric_strings=False):
    """Problems of a response's ``data`` against the ``returns`` schema."""
    info = schema.get(path, {}).get(method)
    if info is None:
        return ["%s %s: not in the schema" % (method, path)]
    problems = []
    _check_value(info.get("returns", {}), data, "%s %s data" % (method, path), problems,
                 allow_numeric_strings)
    return problems


def _check_value(s, value, where, problems, numeric_strings):
    t = s.get("type")
    if t is None and "properties" in s:
        t = "object"
    if value is None:
        if t not in (None, "null"):
            problems.append("%s: null, schema says %s" % (where, t))
        return
    if t == "null":
        problems.append("%s: %r, schema says null" % (where, value))
    elif t == "object":
        if not isinstance(value, dict):
            problems.append("%s: %s, schema says object" % (where, type(value).__name__))
            return
        for key, sub in (s.get("properties") or {}).items():
            if key.endswith("[n]"):
                continue
            if key not in value:
                if not sub.get("optional"):
                    problems.append("%s: required property %r missing" % (where, key))
                continue
            _check_value(sub, value[key], "%s.%s" % (where, key), problems, numeric_strings)
    elif t == "array":
        if not isinstance(value, list):
            problems.append("%s: %s, schema says array" % (where, type(value).__name__))
            return
        for i, item in enumerate(value[:200]):
            _check_value(s.get("items", {}), item, "%s[%d]" % (where, i), problems,
                         numeric_strings)
    elif t == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and numeric_strings and isinstance(value, str) and value.isdigit():
            ok = True
        if not ok:
            problems.append("%s: %r, schema says integer" % (where, value))
    elif t == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append("%s: %r, schema says number" % (where, value))
    elif t == "boolean":
        if value not in (0, 1) or isinstance(value, float):
            problems.append("%s: %r, schema says boolean (0/1)" % (where, value))
    elif t == "string":
        if not isinstance(value, str):
            problems.append("%s: %r, schema says string" % (where, value))
            return
        if s.get("enum") and value not in s["enum"]:
            problems.append("%s: %r not in enum %r" % (where, value, s["enum"]))
        if s.get("pattern") and not perl_regex(s["pattern"]).match(value):
            problems.append("%s: %r does not match %r" % (where, value, s["pattern"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schema", help="path of the schema file")
    args = ap.parse_args(argv)
    import pvesim
    path = args.schema or find_schema()
    schema = load_schema(path)
    problems = check_routes(pvesim.ROUTES, schema)
    problems += ["privilege %s: in the schema, not in pvesim.PRIVILEGES" % p
                 for p in sorted(privileges_in_schema(schema) - set(pvesim.PRIVILEGES))]
    print("schema: %s" % path)
    print("routes: %d (%d parameters)" % (len(pvesim.ROUTES),
                                         sum(len(r.params) for r in pvesim.ROUTES)))
    print("formats accepted without a check: %s" % ", ".join(unenforced_formats(pvesim.ROUTES)))
    for p in problems:
        print("PROBLEM: %s" % p)
    print("OK" if not problems else "%d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
