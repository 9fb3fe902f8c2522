"""Parameter specifications in the shape of the Proxmox VE JSON schema, and the
checks PVE::JSONSchema applies to request parameters (type, range, length,
pattern, enum, format, property strings), with Proxmox's error texts.

A ``Spec`` mirrors one schema property.  The simulator's route table is built
from them, and ``schema_check.py`` compares every ``Spec`` with the official
schema, attribute by attribute, so the names used here follow the schema
(``minimum``, ``maxLength``, ``format``, ...).
"""

import ipaddress
import re

MISSING = "property is missing and it is not optional"
NOT_DEFINED = ("property is not defined in schema and the schema does not "
               "allow additional properties")


class Spec:
    """One parameter of a PVE API method (or one key of a property string)."""

    __slots__ = ("type", "optional", "format", "minimum", "maximum",
                 "minLength", "maxLength", "enum", "pattern", "requires",
                 "default_key", "count", "alias", "keyAlias")

    def __init__(self, type, *, opt=False, fmt=None, minimum=None,
                 maximum=None, minlen=None, maxlen=None, enum=None,
                 pattern=None, requires=None, default_key=False, count=None,
                 alias=None, key_alias=None):
        self.type = type
        self.optional = bool(opt)
        self.format = fmt              # str (named format), dict (property string) or None
        self.minimum = minimum
        self.maximum = maximum
        self.minLength = minlen
        self.maxLength = maxlen
        self.enum = list(enum) if enum is not None else None
        self.pattern = pattern         # exactly as in the schema (Perl syntax)
        self.requires = requires
        self.default_key = default_key
        self.count = count             # for indexed keys "net[n]": how many
        self.alias = alias             # property-string key that stands for another key
        self.keyAlias = key_alias      # ... and sets this key to its own name (virtio=MAC)

    def __repr__(self):
        attrs = {k: getattr(self, k) for k in self.__slots__
                 if getattr(self, k) not in (None, False)}
        return "Spec(%r)" % attrs


def Int(minimum=None, maximum=None, **kw):
    return Spec("integer", minimum=minimum, maximum=maximum, **kw)


def Num(minimum=None, maximum=None, **kw):
    return Spec("number", minimum=minimum, maximum=maximum, **kw)


def Bool(**kw):
    return Spec("boolean", **kw)


def Str(**kw):
    return Spec("string", **kw)


def PropStr(keys, **kw):
    """A string holding a property string ``k=v,k=v`` whose keys are ``keys``."""
    return Spec("string", fmt=dict(keys), **kw)


def Alias(target, key_alias=None):
    """A property-string key that is another name for ``target`` (the schema's
    ``alias``); with ``key_alias``, the key's own name becomes that key's value, as
    ``virtio=BC:24:11:…`` sets model=virtio and macaddr in a QEMU net[n]."""
    return Spec(None, alias=target, key_alias=key_alias)


# --------------------------------------------------------------------------
# Perl regexes of the schema -> Python

_re_cache = {}


def perl_regex(pattern):
    """Compile a schema pattern; PVE anchors it as m/^(?:pattern)$/."""
    rx = _re_cache.get(pattern)
    if rx is None:
        py = pattern.replace("(?^i:", "(?i:").replace("(?^:", "(?:")
        rx = re.compile(r"(?:%s)\Z" % py)
        _re_cache[pattern] = rx
    return rx


# --------------------------------------------------------------------------
# Named formats (PVE::JSONSchema register_format).  Each checker raises
# FormatError with the text Proxmox uses; unknown formats are accepted.

class FormatError(Exception):
    pass


_DNS_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?"
_DNS_NAME = re.compile(r"(?:%s\.)*%s\Z" % (_DNS_LABEL, _DNS_LABEL))
_CONFIGID = re.compile(r"[a-z][a-z0-9_-]+\Z", re.I)
_STORAGEID = re.compile(r"[a-z][a-z0-9\-_.]*[a-z0-9]\Z", re.I)
_NODE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?\Z")
_VMID = re.compile(r"[1-9][0-9]{2,8}\Z")
_MAC = re.compile(r"[a-f0-9][02468ace](?::[a-f0-9]{2}){5}\Z", re.I)
_POOLID = re.compile(r"[A-Za-z0-9_\-]+\Z")
_TAG = re.compile(r"[a-z0-9_][a-z0-9_\-+.]*\Z", re.I)
_REALM = re.compile(r"[A-Za-z][A-Za-z.\-_0-9]+\Z")
_USERID = re.compile(r"[^\s:/]+@[A-Za-z][A-Za-z.\-_0-9]+\Z")
_VOLID = re.compile(r"[a-z][a-z0-9\-_.]*[a-z0-9]:.+\Z", re.I)
_DISKSIZE = re.compile(r"\d+(?:\.\d+)?[KMGT]?\Z")
_TZ = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*\Z")


def _split_list(value):
    return [x for x in re.split(r"[\s,;]+", value) if x]


def _ipv4_cidr(v):
    try:
        ipaddress.IPv4Interface(v)
        return "/" in v
    except ValueError:
        return False


def _ipv6_cidr(v):
    try:
        ipaddress.IPv6Interface(v)
        return "/" in v
    except ValueError:
        return False


def _ip(v):
    try:
        ipaddress.ip_address(v.split("%", 1)[0])
        return True
    except ValueError:
        return False


def _check_vmid(v):
    if not _VMID.match(v):
        raise FormatError("value does not look like a valid VM ID")


def _check_node(v):
    if not _NODE.match(v):
        raise FormatError("value does not look like a valid node name")


def _check_configid(v):
    if not _CONFIGID.match(v):
        raise FormatError("invalid configuration ID '%s'" % v)


def _check_configid_list(v):
    for item in _split_list(v):
        _check_configid(item)


def _check_storage_id(v):
    if not _STORAGEID.match(v):
        raise FormatError("storage ID '%s' contains illegal characters" % v)


# PVE::Storage::Plugin::verify_content: the content types of a 'dir' storage (it has all)
STORAGE_CONTENT_TYPES = ("backup", "images", "import", "iso", "none", "rootdir", "snippets",
                         "vztmpl")


def _check_storage_content(v):
    if v not in STORAGE_CONTENT_TYPES:
        raise FormatError("invalid content type '%s'" % v)


def _check_storage_content_list(v):
    for item in _split_list(v):
        _check_storage_content(item)


def _check_dns_name(v):
    if not _DNS_NAME.match(v):
        raise FormatError("value does not look like a valid DNS name")


def _check_dns_name_list(v):
    for item in _split_list(v):
        _check_dns_name(item)


def _check_mac(v):
    if not _MAC.match(v):
        raise FormatError("value does not look like a valid unicast MAC address")


def _check_ipv4(v):
    try:
        ipaddress.IPv4Address(v)
    except ValueError:
        raise FormatError("value does not look like a valid IPv4 address")


def _check_ipv6(v):
    try:
        ipaddress.IPv6Address(v)
    except ValueError:
        raise FormatError("value does not look like a valid IPv6 address")


def _check_ip(v):
    if not _ip(v):
        raise FormatError("value does not look like a valid IP address")


def _check_ipv4_config(v):
    if v not in ("dhcp", "manual") and not _ipv4_cidr(v):
        raise FormatError("value does not look like a valid IPv4 network configuration")


def _check_ipv6_config(v):
    if v not in ("auto", "dhcp", "manual") and not _ipv6_cidr(v):
        raise FormatError("value does not look like a valid IPv6 network configuration")


def _check_ip_list(v):
    for item in _split_list(v):
        if not _ip(item):
            raise FormatError("unable to parse IP address '%s'" % item)


def _check_poolid(v):
    if not _POOLID.match(v):
        raise FormatError("invalid pool ID '%s'" % v)


def _check_tag_list(v):
    for item in _split_list(v):
        if not _TAG.match(item):
            raise FormatError("invalid tag '%s'" % item)


def _check_volume_id(v):
    if not (_VOLID.match(v) or v.startswith("/")):
        raise FormatError("unable to parse volume ID '%s'" % v)


def _check_disk_size(v):
    if not _DISKSIZE.match(v):
        raise FormatError("unable to parse size '%s'" % v)


def _check_realm(v):
    if not _REALM.match(v):
        raise FormatError("value does not look like a valid realm")


def _check_userid(v):
    if not _USERID.match(v):
        raise FormatError("value '%s' does not look like a valid user name" % v)


def _check_mp_string(v):
    if "\0" in v or "," in v:
        raise FormatError("invalid mount point path '%s'" % v)


def _check_timezone(v):
    if v != "host" and not _TZ.match(v):
        raise FormatError("invalid time zone '%s'" % v)


def _check_urlencoded(v):
    """pve_verify_urlencoded: what URI escaping leaves (a '+' or a space is refused)."""
    if not re.fullmatch(r"[-%a-zA-Z0-9_.!~*'()]*", v):
        raise FormatError("invalid urlencoded string: %s" % v)


def _check_bridge_id(v):
    if not re.fullmatch(r"[-_.\w\d]+", v):
        raise FormatError("invalid bridge ID '%s'" % v)


def _check_hotplug(v):
    if v in ("0", "1"):
        return
    for item in _split_list(v):
        if item not in ("network", "disk", "cpu", "memory", "usb", "cloudinit"):
            raise FormatError("invalid hotplug feature '%s'" % item)


def _check_startup(v):
    for item in v.split(","):
        if re.fullmatch(r"(?:order=)?\d+|up=\d+|down=\d+", item.strip()) is None:
            raise FormatError("unable to parse startup options")


FORMATS = {
    "pve-vmid": _check_vmid,
    "pve-node": _check_node,
    "pve-configid": _check_configid,
    "pve-configid-list": _check_configid_list,
    "pve-storage-id": _check_storage_id,
    "pve-storage-content": _check_storage_content,
    "pve-storage-content-list": _check_storage_content_list,
    "dns-name": _check_dns_name,
    "dns-name-list": _check_dns_name_list,
    "mac-addr": _check_mac,
    "ipv4": _check_ipv4,
    "ipv6": _check_ipv6,
    "ip": _check_ip,
    "pve-ipv4-config": _check_ipv4_config,
    "pve-ipv6-config": _check_ipv6_config,
    "lxc-ip-with-ll-iface-list": _check_ip_list,
    "address-list": _check_ip_list,
    "pve-poolid": _check_poolid,
    "pve-tag-list": _check_tag_list,
    "pve-volume-id": _check_volume_id,
    "disk-size": _check_disk_size,
    "pve-realm": _check_realm,
    "pve-userid": _check_userid,
    "pve-lxc-mp-string": _check_mp_string,
    "pve-lxc-dev-string": _check_mp_string,
    "pve-ct-timezone": _check_timezone,
    "pve-startup-order": _check_startup,
    "urlencoded": _check_urlencoded,
    "pve-bridge-id": _check_bridge_id,
    "pve-hotplug-features": _check_hotplug,
}

# Named formats that are property strings (register_format with a hash): checked key
# by key like an inline one, errors named "<param>.<key>".
NAMED_PROPSTR = {
    # qemu-server PVE::QemuServer::Network $ipconfig_fmt
    "pve-qm-ipconfig": {
        "ip": Spec("string", fmt="pve-ipv4-config", opt=True),
        "gw": Spec("string", fmt="ipv4", opt=True, requires="ip"),
        "ip6": Spec("string", fmt="pve-ipv6-config", opt=True),
        "gw6": Spec("string", fmt="ipv6", opt=True, requires="ip6"),
    },
}


# --------------------------------------------------------------------------
# Values

_INT = re.compile(r"[+-]?\d+\Z")
_NUM = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")


def wire_value(v):
    """A JSON body value as the string PVE's check_type would see."""
    if v is True:
        return "1"
    if v is False:
        return "0"
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, dict)):
        return v  # rejected by the type check below
    return str(v)


def _num(s):
    return int(s) if _INT.match(s) else float(s)


def check_value(spec, value, path, errors):
    """Check one value; add Proxmox-worded errors; return the typed value."""
    if not isinstance(value, str):
        errors[path] = "type check ('%s') failed - got %s" % (
            spec.type, "ARRAY" if isinstance(value, list) else "HASH")
        return None
    t = spec.type
    if t == "integer":
        if not _INT.match(value):
            errors[path] = "type check ('integer') failed - got '%s'" % value
            return None
        typed = int(value)
    elif t == "number":
        if not _NUM.match(value):
            errors[path] = "type check ('number') failed - got '%s'" % value
            return None
        typed = _num(value)
    elif t == "boolean":
        if value not in ("0", "1"):
            errors[path] = "type check ('boolean') failed - got '%s'" % value
            return None
        return int(value)
    else:
        typed = value
    if t in ("integer", "number"):
        if spec.minimum is not None and typed < float(spec.minimum):
            errors[path] = "value must have a minimum value of %s" % spec.minimum
            return None
        if spec.maximum is not None and typed > float(spec.maximum):
            errors[path] = "value must have a maximum value of %s" % spec.maximum
            return None
    if t == "string":
        if spec.maxLength is not None and len(value) > spec.maxLength:
            errors[path] = "value may only be %d characters long" % spec.maxLength
            return None
        if spec.minLength is not None and len(value) < spec.minLength:
            errors[path] = "value must be at least %d characters long" % spec.minLength
            return None
    if spec.pattern is not None and not perl_regex(spec.pattern).match(value):
        errors[path] = "value does not match the regex pattern"
        return None
    if spec.enum is not None and value not in spec.enum:
        errors[path] = "value '%s' does not have a value in the enumeration '%s'" % (
            value, ", ".join(spec.enum))
        return None
    if isinstance(spec.format, dict) or spec.format in NAMED_PROPSTR:
        sub_errors = {}
        keys = spec.format if isinstance(spec.format, dict) else NAMED_PROPSTR[spec.format]
        parse_property_string(keys, value, path, sub_errors)
        if sub_errors:
            errors[path] = "invalid format - " + _format_error_text(sub_errors)
            return None
    elif spec.format in FORMATS:
        try:
            FORMATS[spec.format](value)
        except FormatError as e:
            errors[path] = "invalid format - %s\n" % e
            return None
    return typed


def _format_error_text(sub_errors):
    if "" in sub_errors:
        return sub_errors[""]
    return "format error\n" + "".join(
        "%s: %s\n" % (k, v.rstrip("\n")) for k, v in sorted(sub_errors.items()))


def parse_boolean(v):
    lv = v.lower()
    if lv in ("1", "on", "yes", "true"):
        return "1"
    if lv in ("0", "off", "no", "false"):
        return "0"
    return v


def parse_property_string(keys, value, path="", errors=None):
    """Parse ``k=v,k=v`` against a dict of sub-``Spec`` (PVE parse_property_string).

    Aliases are resolved (``virtio=MAC`` sets model and macaddr).  Returns the dict
    of typed values; on error fills ``errors`` (when given) or raises FormatError.
    """
    own = errors is None
    errors = {} if own else errors
    default_key = next((k for k, s in keys.items() if s.default_key), None)
    result = {}
    raw = {}
    for part in value.split(","):
        if part.strip() == "":
            continue
        if "=" in part:
            k, v = part.split("=", 1)
            if k == "" or v == "":
                errors[""] = "missing key in comma-separated list property\n"
                break
            if k in raw:
                errors[""] = "duplicate key in comma-separated list property: %s\n" % k
                break
            spec = keys.get(k)
            if spec is not None and spec.alias:
                if spec.keyAlias:
                    if spec.keyAlias in raw:
                        errors[""] = "key alias '%s' is already defined\n" % spec.keyAlias
                        break
                    raw[spec.keyAlias] = k
                k = spec.alias
                if k in raw:
                    errors[""] = "key '%s' is already defined (via alias)\n" % k
                    break
            if k not in keys:
                errors[""] = "invalid key in comma-separated list property: %s\n" % k
                break
        elif default_key is not None and default_key not in raw:
            k, v = default_key, part
        elif default_key is not None:
            errors[""] = "duplicate key in comma-separated list property: %s\n" % default_key
            break
        else:
            errors[""] = "value without key, but schema does not define a default key\n"
            break
        raw[k] = v
    if "" not in errors:
        for k, v in raw.items():
            spec = keys[k]
            if spec.type == "boolean":
                v = parse_boolean(v)
            typed = check_value(spec, v, "%s.%s" % (path, k) if path else k, errors)
            if typed is not None:
                result[k] = typed
        for k, spec in keys.items():
            if spec.alias:
                continue
            if not spec.optional and k not in raw:
                errors["%s.%s" % (path, k) if path else k] = MISSING
            if k in raw and spec.requires and spec.requires not in raw:
                name = "%s.%s" % (path, spec.requires) if path else spec.requires
                errors[name] = "missing property required by '%s'" % (
                    "%s.%s" % (path, k) if path else k)
    if own and errors:
        raise FormatError(_format_error_text(errors).rstrip("\n"))
    return result


def print_property_string(keys, values, first=()):
    """Serialise like PVE print_property_string: the default key bare (combined with
    its key alias' target: ``virtio=MAC``), then ``first``, then sorted."""
    out = []
    default_key = next((k for k, s in keys.items() if s.default_key), None)
    combine = {s.keyAlias: s.alias for s in keys.values() if s.alias and s.keyAlias}
    done = set()
    if default_key is not None and default_key in values:
        target = combine.get(default_key)
        if target is not None and values.get(target) is not None:
            out.append("%s=%s" % (values[default_key], values[target]))
            done.add(target)
        else:
            out.append(str(values[default_key]))
        done.add(default_key)
    order = [k for k in first if k in values and k not in done] + sorted(
        k for k in values if k not in first and k not in done)
    for k in order:
        if values[k] is not None:
            out.append("%s=%s" % (k, values[k]))
    return ",".join(out)


# --------------------------------------------------------------------------
# Whole parameter sets

_INDEXED = re.compile(r"([a-z][a-z_-]*?)(\d+)\Z")


def lookup(props, name):
    """The Spec for ``name`` in ``props`` (handles ``net0`` -> ``net[n]``)."""
    spec = props.get(name)
    if spec is not None:
        return spec
    m = _INDEXED.match(name)
    if m:
        spec = props.get(m.group(1) + "[n]")
        if spec is not None and int(m.group(2)) < (spec.count or 0) and \
                str(int(m.group(2))) == m.group(2):
            return spec
    return None


def validate(props, raw):
    """Validate ``raw`` (name -> str) against ``props`` (name -> Spec).

    Returns (typed values, errors); errors maps parameter names to Proxmox's
    messages and is empty when everything is fine.
    """
    errors = {}
    values = {}
    for name, value in raw.items():
        spec = lookup(props, name)
        if spec is None:
            errors[name] = NOT_DEFINED
            continue
        if value is None:
            continue
        typed = check_value(spec, value, name, errors)
        if typed is not None:
            values[name] = typed
    for name, spec in props.items():
        if spec.optional or spec.count:
            continue
        if name not in raw and name not in errors:
            errors[name] = MISSING
    for name in list(values):
        spec = lookup(props, name)
        if spec.requires and spec.requires not in values and spec.requires not in errors:
            errors[spec.requires] = "missing property required by '%s'" % name
    return values, errors
