#!/usr/bin/python3
"""pvesim — a stand-alone Proxmox VE API simulator (HTTPS, /api2/json).

It serves the subset of the PVE 9.1 API that ospab panel uses, following the
official schema (paths, parameter names/types, ``{"data": ...}`` envelope,
error shapes and status lines, UPIDs, task durations, ``lock:`` semantics,
the lag of /cluster/resources) and lets tests inject faults through a control
API under ``/_sim/``.  Python 3.11 standard library only; the TLS certificate
is made with the ``openssl`` command line tool.  See README.md.

Usage:
    /usr/bin/python3 tests/pvesim/pvesim.py --port 8006 --state-dir DIR \
        [--host 127.0.0.1] [--nodes pve1,pve2] [--token 'root@pam!ospab=<uuid>'] \
        [--guests N] [--time-scale 1.0] [--resources-lag 5] \
        [--token-privs 'root@pam!ospab=VM.Audit,Sys.Audit']
"""

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.server
import ipaddress
import json
import math
import os
import re
import secrets
import shlex
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from collections import Counter, OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pveparams import (STORAGE_CONTENT_TYPES, Alias, Bool, FormatError, Int,  # noqa: E402
                       Num, PropStr, Str, lookup, parse_property_string,
                       print_property_string, validate, wire_value)
import vncdes  # noqa: E402

PVE_VERSION = {"version": "9.1.2", "release": "9.1", "repoid": "a1b2c3d4e5f60718"}
QEMU_VERSION = "10.1.2"                  # pve-qemu-kvm of PVE 9.1
QEMU_MACHINE = "pc-i440fx-10.1+pve0"
PVEVERSION_STRING = "pve-manager/9.1.2/a1b2c3d4e5f60718 (running kernel: 6.17.2-1-pve)"
SERVER_HEADER = "pve-api-daemon/3.0"
GiB = 1024 ** 3
MiB = 1024 ** 2

# Base durations of tasks in seconds (multiplied by --time-scale).
DURATIONS = {
    "vzcreate": 8.0, "vzrestore": 8.0, "vzstart": 1.5, "vzstop": 1.0,
    "vzshutdown": 3.0, "vzreboot": 3.5, "vzsuspend": 1.0, "vzresume": 1.0,
    "vzdestroy": 3.0, "vzsnapshot": 2.0, "vzdelsnapshot": 1.5,
    "vzrollback": 3.0, "resize": 2.0,
    "qmstart": 2.0, "qmstop": 1.0, "qmshutdown": 4.0, "qmreboot": 5.0,
    "qmsuspend": 1.0, "qmresume": 1.0, "qmdestroy": 3.0, "qmsnapshot": 2.0,
    "qmdelsnapshot": 1.5, "qmrollback": 3.0,
    # a linked clone; a full copy adds 0.1 s per GiB of its disks
    "qmclone": 2.0, "qmconfig": 0.5, "qmtemplate": 2.0,
}

# ==========================================================================
# Privileges (pve-access-control AccessControl.pm $privgroups, PVE 9.0.4 as in
# PVE 9.1: VM.Monitor is gone, VM.GuestAgent.* and VM.Replicate are new) plus
# Permissions.Modify, which is in no group.  The Administrator role has them all.
PRIVILEGES = tuple(sorted([
    "VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM",
    "VM.Config.CPU", "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType",
    "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.Console",
    "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted", "VM.Migrate",
    "VM.PowerMgmt", "VM.Replicate", "VM.Snapshot", "VM.Snapshot.Rollback",
    "Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify",
    "Sys.PowerMgmt", "Sys.Syslog",
    "Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "SDN.Allocate", "SDN.Audit", "SDN.Use",
    "Realm.Allocate", "Realm.AllocateUser", "User.Modify", "Group.Allocate",
    "Pool.Allocate", "Pool.Audit",
    "Mapping.Audit", "Mapping.Modify", "Mapping.Use",
    "Permissions.Modify",
]))
ALL_PRIVS = frozenset(PRIVILEGES)
# RPCEnvironment::get_effective_permissions: the paths it always looks at (plus ACL
# paths; the simulator's only ACL path is "/")
DEFAULT_ACL_PATHS = ("/", "/access", "/access/groups", "/nodes", "/pool", "/sdn",
                     "/storage", "/vms")

# ==========================================================================
# Route table.  Every served path, method and parameter is declared here,
# in the shape of the official schema (schema_check.py compares them).

NODE = Str(fmt="pve-node")
VMID = Int(100, 999999999, fmt="pve-vmid")
SNAPNAME = Str(fmt="pve-configid", maxlen=40)
UPID_P = Str()
CF = Str(enum=["AVERAGE", "MAX"], opt=1)
TIMEFRAME = Str(enum=["hour", "day", "week", "month", "year"])
MOUNTOPTIONS = ("(?^:(?^:(discard|lazytime|noatime|nodev|noexec|nosuid))"
                "(;(?^:(discard|lazytime|noatime|nodev|noexec|nosuid)))*)")
PRINTABLE = "(?^:[^\\x00-\\x08\\x10-\\x1F\\x7F]+)"
ENV_PATTERN = ("(?^:(?:\\w+=[^\\x00-\\x08\\x10-\\x1F\\x7F]*)"
               "(?:\\0\\w+=[^\\x00-\\x08\\x10-\\x1F\\x7F]*)*)")
LXC_LOCKS = ["backup", "create", "destroyed", "disk", "fstrim", "migrate",
             "mounted", "rollback", "snapshot", "snapshot-delete"]
MAX_LXC_NETWORKS = 32      # net0..net31
MAX_MOUNT_POINTS = 256     # mp0..mp255

NET_KEYS = {
    "bridge": Str(pattern="[-_.\\w\\d]+", opt=1),
    "firewall": Bool(opt=1),
    "gw": Str(fmt="ipv4", opt=1),
    "gw6": Str(fmt="ipv6", opt=1),
    "host-managed": Bool(opt=1),
    "hwaddr": Str(fmt="mac-addr", opt=1),
    "ip": Str(fmt="pve-ipv4-config", opt=1),
    "ip6": Str(fmt="pve-ipv6-config", opt=1),
    "link_down": Bool(opt=1),
    "mtu": Int(64, 65535, opt=1),
    "name": Str(pattern="[-_.\\w\\d]+"),
    "rate": Num(opt=1),
    "tag": Int(1, 4094, opt=1),
    "trunks": Str(pattern="(?^:\\d+(?:;\\d+)*)", opt=1),
    "type": Str(enum=["veth"], opt=1),
}
ROOTFS_KEYS = {
    "acl": Bool(opt=1),
    "mountoptions": Str(pattern=MOUNTOPTIONS, opt=1),
    "quota": Bool(opt=1),
    "replicate": Bool(opt=1),
    "ro": Bool(opt=1),
    "shared": Bool(opt=1),
    "size": Str(fmt="disk-size", opt=1),
    "volume": Str(fmt="pve-lxc-mp-string", default_key=True),
}
MP_KEYS = dict(ROOTFS_KEYS, backup=Bool(opt=1), keepattrs=Bool(opt=1),
               mp=Str(fmt="pve-lxc-mp-string"))
DEV_KEYS = {
    "deny-write": Bool(opt=1),
    "gid": Int(0, opt=1),
    "mode": Str(pattern="0[0-7]{3}", opt=1),
    "path": Str(fmt="pve-lxc-dev-string", default_key=True, opt=1),
    "uid": Int(0, opt=1),
}
FEATURES_KEYS = {
    "force_rw_sys": Bool(opt=1),
    "fuse": Bool(opt=1),
    "keyctl": Bool(opt=1),
    "mknod": Bool(opt=1),
    "mount": Str(pattern="(?^:[a-zA-Z0-9_; ]+)", opt=1),
    "nesting": Bool(opt=1),
}

# Container options shared by create (POST …/lxc) and PUT …/config.
LXC_OPTIONS = {
    "arch": Str(enum=["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"], opt=1),
    "cmode": Str(enum=["shell", "console", "tty"], opt=1),
    "console": Bool(opt=1),
    "cores": Int(1, 8192, opt=1),
    "cpulimit": Num(0, 8192, opt=1),
    "cpuunits": Int(0, 500000, opt=1),
    "debug": Bool(opt=1),
    "description": Str(maxlen=8192, opt=1),
    "dev[n]": PropStr(DEV_KEYS, opt=1, count=256),
    "entrypoint": Str(pattern=PRINTABLE, opt=1),
    "env": Str(pattern=ENV_PATTERN, opt=1),
    "features": PropStr(FEATURES_KEYS, opt=1),
    "hookscript": Str(fmt="pve-volume-id", opt=1),
    "hostname": Str(fmt="dns-name", maxlen=255, opt=1),
    "lock": Str(enum=LXC_LOCKS, opt=1),
    "memory": Int(16, opt=1),
    "mp[n]": PropStr(MP_KEYS, opt=1, count=MAX_MOUNT_POINTS),
    "nameserver": Str(fmt="lxc-ip-with-ll-iface-list", opt=1),
    "net[n]": PropStr(NET_KEYS, opt=1, count=MAX_LXC_NETWORKS),
    "onboot": Bool(opt=1),
    "ostype": Str(enum=["debian", "devuan", "ubuntu", "centos", "fedora", "opensuse",
                        "archlinux", "alpine", "gentoo", "nixos", "unmanaged"], opt=1),
    "protection": Bool(opt=1),
    "rootfs": PropStr(ROOTFS_KEYS, opt=1),
    "searchdomain": Str(fmt="dns-name-list", opt=1),
    "startup": Str(fmt="pve-startup-order", opt=1),
    "swap": Int(0, opt=1),
    "tags": Str(fmt="pve-tag-list", opt=1),
    "template": Bool(opt=1),
    "timezone": Str(fmt="pve-ct-timezone", opt=1),
    "tty": Int(0, 6, opt=1),
    "unprivileged": Bool(opt=1),
    "unused[n]": PropStr({"volume": Str(fmt="pve-volume-id", default_key=True)},
                         opt=1, count=256),
}
LXC_CREATE = dict(
    LXC_OPTIONS, node=NODE, vmid=VMID,
    ostemplate=Str(maxlen=255),
    password=Str(minlen=5, opt=1),
    storage=Str(fmt="pve-storage-id", opt=1),
    force=Bool(opt=1),
    restore=Bool(opt=1),
    unique=Bool(requires="restore", opt=1),
    pool=Str(fmt="pve-poolid", opt=1),
    bwlimit=Num(0, opt=1),
    start=Bool(opt=1),
    **{"ignore-unpack-errors": Bool(opt=1), "ssh-public-keys": Str(opt=1),
       "ha-managed": Bool(opt=1)})
LXC_UPDATE = dict(LXC_OPTIONS, node=NODE, vmid=VMID,
                  delete=Str(fmt="pve-configid-list", opt=1),
                  revert=Str(fmt="pve-configid-list", opt=1),
                  digest=Str(maxlen=40, opt=1))
GUEST = {"node": NODE, "vmid": VMID}
SNAP = {"node": NODE, "vmid": VMID, "snapname": SNAPNAME}
TASK = {"node": NODE, "upid": UPID_P}
STORAGE = {"node": NODE, "storage": Str(fmt="pve-storage-id")}

QEMU_MACHINE_KEYS = {
    "aw-bits": Num(32, 64, opt=1),
    "enable-s3": Bool(opt=1),
    "enable-s4": Bool(opt=1),
    "type": Str(maxlen=40, default_key=True, opt=1, pattern=(
        "(pc|pc(-i440fx)?-\\d+(\\.\\d+)+(\\+pve\\d+)?(\\.pxe)?|q35|pc-q35-\\d+(\\.\\d+)+"
        "(\\+pve\\d+)?(\\.pxe)?|virt(?:-\\d+(\\.\\d+)+)?(\\+pve\\d+)?)")),
    "viommu": Str(enum=["intel", "virtio"], opt=1),
}

# QEMU options (qemu-server $confdesc as the 9.1 schema has it for POST/PUT …/config):
# disks share most keys.
QEMU_MAX_IDE, QEMU_MAX_SATA, QEMU_MAX_SCSI, QEMU_MAX_VIRTIO = 4, 6, 31, 16
QEMU_MAX_NETS, QEMU_MAX_SERIAL, QEMU_MAX_PARALLEL, QEMU_MAX_NUMA = 32, 4, 3, 8
QEMU_MAX_USB, QEMU_MAX_HOSTPCI, QEMU_MAX_UNUSED, QEMU_MAX_VIRTIOFS = 14, 16, 256, 10
DRIVE_KEYS = {
    'aio': Str(enum=['native', 'threads', 'io_uring'], opt=1),
    'backup': Bool(opt=1),
    'bps': Int(opt=1),
    'bps_max_length': Int(1, opt=1),
    'bps_rd': Int(opt=1),
    'bps_rd_length': Alias('bps_rd_max_length'),
    'bps_rd_max_length': Int(1, opt=1),
    'bps_wr': Int(opt=1),
    'bps_wr_length': Alias('bps_wr_max_length'),
    'bps_wr_max_length': Int(1, opt=1),
    'cache': Str(enum=['none', 'writethrough', 'writeback', 'unsafe', 'directsync'], opt=1),
    'detect_zeroes': Bool(opt=1),
    'discard': Str(enum=['ignore', 'on'], opt=1),
    'file': Str(fmt='pve-volume-id-or-qm-path', default_key=True),
    'format': Str(enum=['raw', 'qcow', 'qed', 'qcow2', 'vmdk', 'cloop'], opt=1),
    'import-from': Str(fmt='pve-volume-id-or-absolute-path', opt=1),
    'iops': Int(opt=1),
    'iops_max': Int(opt=1),
    'iops_max_length': Int(1, opt=1),
    'iops_rd': Int(opt=1),
    'iops_rd_length': Alias('iops_rd_max_length'),
    'iops_rd_max': Int(opt=1),
    'iops_rd_max_length': Int(1, opt=1),
    'iops_wr': Int(opt=1),
    'iops_wr_length': Alias('iops_wr_max_length'),
    'iops_wr_max': Int(opt=1),
    'iops_wr_max_length': Int(1, opt=1),
    'mbps': Num(opt=1),
    'mbps_max': Num(opt=1),
    'mbps_rd': Num(opt=1),
    'mbps_rd_max': Num(opt=1),
    'mbps_wr': Num(opt=1),
    'mbps_wr_max': Num(opt=1),
    'media': Str(enum=['cdrom', 'disk'], opt=1),
    'replicate': Bool(opt=1),
    'rerror': Str(enum=['ignore', 'report', 'stop'], opt=1),
    'serial': Str(fmt='urlencoded', maxlen=60, opt=1),
    'shared': Bool(opt=1),
    'size': Str(fmt='disk-size', opt=1),
    'snapshot': Bool(opt=1),
    'volume': Alias('file'),
    'werror': Str(enum=['enospc', 'ignore', 'report', 'stop'], opt=1),
}
IDE_KEYS = dict(DRIVE_KEYS, **{
    'model': Str(fmt='urlencoded', maxlen=120, opt=1),
    'ssd': Bool(opt=1),
    'wwn': Str(pattern='(?^:^(0x)[0-9a-fA-F]{16})', opt=1),
})
SATA_KEYS = dict(DRIVE_KEYS, **{
    'ssd': Bool(opt=1),
    'wwn': Str(pattern='(?^:^(0x)[0-9a-fA-F]{16})', opt=1),
})
SCSI_KEYS = dict(DRIVE_KEYS, **{
    'iothread': Bool(opt=1),
    'product': Str(pattern='[A-Za-z0-9\\-_\\s]{,16}', opt=1),
    'queues': Int(2, opt=1),
    'ro': Bool(opt=1),
    'scsiblock': Bool(opt=1),
    'ssd': Bool(opt=1),
    'vendor': Str(pattern='[A-Za-z0-9\\-_\\s]{,8}', opt=1),
    'wwn': Str(pattern='(?^:^(0x)[0-9a-fA-F]{16})', opt=1),
})
VIRTIO_KEYS = dict(DRIVE_KEYS, **{
    'iothread': Bool(opt=1),
    'ro': Bool(opt=1),
})
QM_AGENT_KEYS = {
    'enabled': Bool(default_key=True),
    'freeze-fs': Bool(opt=1),
    'freeze-fs-on-backup': Alias('freeze-fs'),
    'fstrim_cloned_disks': Bool(opt=1),
    'guest-fsfreeze': Alias('freeze-fs'),
    'type': Str(enum=['virtio', 'isa'], opt=1),
}
QM_AUDIO0_KEYS = {
    'device': Str(enum=['ich9-intel-hda', 'intel-hda', 'AC97']),
    'driver': Str(enum=['spice', 'none'], opt=1),
}
QM_EFIDISK0_KEYS = {
    'efitype': Str(enum=['2m', '4m'], opt=1),
    'file': Str(fmt='pve-volume-id-or-qm-path', default_key=True),
    'format': Str(enum=['raw', 'qcow', 'qed', 'qcow2', 'vmdk', 'cloop'], opt=1),
    'import-from': Str(fmt='pve-volume-id-or-absolute-path', opt=1),
    'ms-cert': Str(enum=['2011', '2023', '2023w', '2023k'], opt=1),
    'pre-enrolled-keys': Bool(opt=1),
    'size': Str(fmt='disk-size', opt=1),
    'volume': Alias('file'),
}
QM_IVSHMEM_KEYS = {
    'name': Str(pattern='[a-zA-Z0-9\\-]+', opt=1),
    'size': Int(1),
}
QM_MEMORY_KEYS = {
    'current': Int(16, default_key=True),
}
QM_NET_KEYS = {
    'bridge': Str(fmt='pve-bridge-id', opt=1),
    'e1000': Alias('macaddr', key_alias='model'),
    'e1000-82540em': Alias('macaddr', key_alias='model'),
    'e1000-82544gc': Alias('macaddr', key_alias='model'),
    'e1000-82545em': Alias('macaddr', key_alias='model'),
    'e1000e': Alias('macaddr', key_alias='model'),
    'firewall': Bool(opt=1),
    'i82551': Alias('macaddr', key_alias='model'),
    'i82557b': Alias('macaddr', key_alias='model'),
    'i82559er': Alias('macaddr', key_alias='model'),
    'link_down': Bool(opt=1),
    'macaddr': Str(fmt='mac-addr', opt=1),
    'model': Str(
        enum=['e1000', 'e1000-82540em', 'e1000-82544gc', 'e1000-82545em', 'e1000e', 'i82551',
              'i82557b', 'i82559er', 'ne2k_isa', 'ne2k_pci', 'pcnet', 'rtl8139', 'virtio',
              'vmxnet3'],
        default_key=True),
    'mtu': Int(1, 65520, opt=1),
    'ne2k_isa': Alias('macaddr', key_alias='model'),
    'ne2k_pci': Alias('macaddr', key_alias='model'),
    'pcnet': Alias('macaddr', key_alias='model'),
    'queues': Int(0, 64, opt=1),
    'rate': Num(0, opt=1),
    'rtl8139': Alias('macaddr', key_alias='model'),
    'tag': Int(1, 4094, opt=1),
    'trunks': Str(pattern='(?^:\\d+(?:-\\d+)?(?:;\\d+(?:-\\d+)?)*)', opt=1),
    'virtio': Alias('macaddr', key_alias='model'),
    'vmxnet3': Alias('macaddr', key_alias='model'),
}
QM_NUMA_KEYS = {
    'cpus': Str(pattern='(?^:\\d+(?:-\\d+)?(?:;\\d+(?:-\\d+)?)*)'),
    'hostnodes': Str(pattern='(?^:\\d+(?:-\\d+)?(?:;\\d+(?:-\\d+)?)*)', opt=1),
    'memory': Num(opt=1),
    'policy': Str(enum=['preferred', 'bind', 'interleave'], opt=1),
}
QM_SPICE_ENHANCEMENTS_KEYS = {
    'foldersharing': Bool(opt=1),
    'videostreaming': Str(enum=['off', 'all', 'filter'], opt=1),
}
QM_TPMSTATE0_KEYS = {
    'file': Str(fmt='pve-volume-id-or-qm-path', default_key=True),
    'format': Str(enum=['raw', 'qcow2', 'vmdk'], opt=1),
    'import-from': Str(fmt='pve-volume-id-or-absolute-path', opt=1),
    'size': Str(fmt='disk-size', opt=1),
    'version': Str(enum=['v1.2', 'v2.0'], opt=1),
    'volume': Alias('file'),
}
QM_UNUSED_KEYS = {
    'file': Str(fmt='pve-volume-id', default_key=True),
    'volume': Alias('file'),
}
QM_USB_KEYS = {
    'host': Str(
        pattern=('(?^:(?:(?:(?^:(0x)?([0-9A-Fa-f]{4}):(0x)?([0-9A-Fa-f]{4})))|'
                 '(?:(?^:(\\d+)\\-(\\d+(\\.\\d+)*)))|[Ss][Pp][Ii][Cc][Ee]))'),
        default_key=True,
        opt=1),
    'mapping': Str(fmt='pve-configid', opt=1),
    'usb3': Bool(opt=1),
}
QM_VGA_KEYS = {
    'clipboard': Str(enum=['vnc'], opt=1),
    'memory': Int(4, 512, opt=1),
    'type': Str(
        enum=['cirrus', 'qxl', 'qxl2', 'qxl3', 'qxl4', 'none', 'serial0', 'serial1', 'serial2',
              'serial3', 'std', 'virtio', 'virtio-gl', 'vmware'],
        default_key=True,
        opt=1),
}
QM_VIRTIOFS_KEYS = {
    'cache': Str(enum=['auto', 'always', 'metadata', 'never'], opt=1),
    'direct-io': Bool(opt=1),
    'dirid': Str(fmt='pve-configid', default_key=True),
    'expose-acl': Bool(opt=1),
    'expose-xattr': Bool(opt=1),
}
QEMU_OPTIONS = {
    'acpi': Bool(opt=1),
    'affinity': Str(fmt='pve-cpuset', opt=1),
    'agent': PropStr(QM_AGENT_KEYS, opt=1),
    'allow-ksm': Bool(opt=1),
    'amd-sev': Str(fmt='pve-qemu-sev-fmt', opt=1),
    'arch': Str(enum=['x86_64', 'aarch64'], opt=1),
    'args': Str(opt=1),
    'audio0': PropStr(QM_AUDIO0_KEYS, opt=1),
    'autostart': Bool(opt=1),
    'balloon': Int(0, opt=1),
    'bios': Str(enum=['seabios', 'ovmf'], opt=1),
    'boot': Str(fmt='pve-qm-boot', opt=1),
    'bootdisk': Str(fmt='pve-qm-bootdisk', pattern='(ide|sata|scsi|virtio)\\d+', opt=1),
    'cdrom': Str(fmt='pve-qm-ide', opt=1),
    'cicustom': Str(fmt='pve-qm-cicustom', opt=1),
    'cipassword': Str(opt=1),
    'citype': Str(enum=['configdrive2', 'nocloud', 'opennebula'], opt=1),
    'ciupgrade': Bool(opt=1),
    'ciuser': Str(opt=1),
    'cores': Int(1, opt=1),
    'cpu': Str(fmt='pve-vm-cpu-conf', opt=1),
    'cpulimit': Num(0, 128, opt=1),
    'cpuunits': Int(1, 262144, opt=1),
    'description': Str(maxlen=8192, opt=1),
    'efidisk0': PropStr(QM_EFIDISK0_KEYS, opt=1),
    'freeze': Bool(opt=1),
    'hookscript': Str(fmt='pve-volume-id', opt=1),
    'hostpci[n]': Str(fmt='pve-qm-hostpci', opt=1, count=QEMU_MAX_HOSTPCI),
    'hotplug': Str(fmt='pve-hotplug-features', opt=1),
    'hugepages': Str(enum=['any', '2', '1024'], opt=1),
    'ide[n]': PropStr(IDE_KEYS, opt=1, count=QEMU_MAX_IDE),
    'intel-tdx': Str(fmt='pve-qemu-tdx-fmt', opt=1),
    'ipconfig[n]': Str(fmt='pve-qm-ipconfig', opt=1, count=QEMU_MAX_NETS),
    'ivshmem': PropStr(QM_IVSHMEM_KEYS, opt=1),
    'keephugepages': Bool(opt=1),
    'keyboard': Str(
        enum=['de', 'de-ch', 'da', 'en-gb', 'en-us', 'es', 'fi', 'fr', 'fr-be', 'fr-ca', 'fr-ch',
              'hu', 'is', 'it', 'ja', 'lt', 'mk', 'nl', 'no', 'pl', 'pt', 'pt-br', 'sv', 'sl',
              'tr'],
        opt=1),
    'kvm': Bool(opt=1),
    'localtime': Bool(opt=1),
    'lock': Str(
        enum=['backup', 'clone', 'create', 'migrate', 'rollback', 'snapshot', 'snapshot-delete',
              'suspending', 'suspended'],
        opt=1),
    'machine': PropStr(QEMU_MACHINE_KEYS, opt=1),
    'memory': PropStr(QM_MEMORY_KEYS, opt=1),
    'migrate_downtime': Num(0, opt=1),
    'migrate_speed': Int(0, opt=1),
    'name': Str(fmt='dns-name', opt=1),
    'nameserver': Str(fmt='address-list', opt=1),
    'net[n]': PropStr(QM_NET_KEYS, opt=1, count=QEMU_MAX_NETS),
    'numa': Bool(opt=1),
    'numa[n]': PropStr(QM_NUMA_KEYS, opt=1, count=QEMU_MAX_NUMA),
    'onboot': Bool(opt=1),
    'ostype': Str(
        enum=['other', 'wxp', 'w2k', 'w2k3', 'w2k8', 'wvista', 'win7', 'win8', 'win10', 'win11',
              'l24', 'l26', 'solaris'],
        opt=1),
    'parallel[n]': Str(pattern='/dev/parport\\d+|/dev/usb/lp\\d+', opt=1, count=QEMU_MAX_PARALLEL),
    'protection': Bool(opt=1),
    'reboot': Bool(opt=1),
    'rng0': Str(fmt='pve-qm-rng', opt=1),
    'sata[n]': PropStr(SATA_KEYS, opt=1, count=QEMU_MAX_SATA),
    'scsi[n]': PropStr(SCSI_KEYS, opt=1, count=QEMU_MAX_SCSI),
    'scsihw': Str(
        enum=['lsi', 'lsi53c810', 'virtio-scsi-pci', 'virtio-scsi-single', 'megasas', 'pvscsi'],
        opt=1),
    'searchdomain': Str(opt=1),
    'serial[n]': Str(pattern='(/dev/.+|socket)', opt=1, count=QEMU_MAX_SERIAL),
    'shares': Int(0, 50000, opt=1),
    'smbios1': Str(fmt='pve-qm-smbios1', maxlen=512, opt=1),
    'smp': Int(1, opt=1),
    'sockets': Int(1, opt=1),
    'spice_enhancements': PropStr(QM_SPICE_ENHANCEMENTS_KEYS, opt=1),
    'sshkeys': Str(fmt='urlencoded', opt=1),
    'startdate': Str(
        pattern='(now|\\d{4}-\\d{1,2}-\\d{1,2}(T\\d{1,2}:\\d{1,2}:\\d{1,2})?)',
        opt=1),
    'startup': Str(fmt='pve-startup-order', opt=1),
    'tablet': Bool(opt=1),
    'tags': Str(fmt='pve-tag-list', opt=1),
    'tdf': Bool(opt=1),
    'template': Bool(opt=1),
    'tpmstate0': PropStr(QM_TPMSTATE0_KEYS, opt=1),
    'unused[n]': PropStr(QM_UNUSED_KEYS, opt=1, count=QEMU_MAX_UNUSED),
    'usb[n]': PropStr(QM_USB_KEYS, opt=1, count=QEMU_MAX_USB),
    'vcpus': Int(1, opt=1),
    'vga': PropStr(QM_VGA_KEYS, opt=1),
    'virtio[n]': PropStr(VIRTIO_KEYS, opt=1, count=QEMU_MAX_VIRTIO),
    'virtiofs[n]': PropStr(QM_VIRTIOFS_KEYS, opt=1, count=QEMU_MAX_VIRTIOFS),
    'vmgenid': Str(pattern='(?:[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])', opt=1),
    'vmstatestorage': Str(fmt='pve-storage-id', opt=1),
    'watchdog': Str(fmt='pve-qm-watchdog', opt=1),
}

QEMU_DISK_NAMES = (["ide%d" % i for i in range(QEMU_MAX_IDE)] +
                   ["scsi%d" % i for i in range(QEMU_MAX_SCSI)] +
                   ["virtio%d" % i for i in range(QEMU_MAX_VIRTIO)] +
                   ["sata%d" % i for i in range(QEMU_MAX_SATA)] + ["efidisk0", "tpmstate0"])
QEMU_UPDATE = dict(QEMU_OPTIONS, node=NODE, vmid=VMID,
                   delete=Str(fmt="pve-configid-list", opt=1),
                   revert=Str(fmt="pve-configid-list", opt=1),
                   digest=Str(maxlen=40, opt=1), skiplock=Bool(opt=1),
                   force=Bool(requires="delete", opt=1))
QEMU_UPDATE_ASYNC = dict(QEMU_UPDATE, background_delay=Int(1, 30, opt=1),
                         **{"import-working-storage": Str(fmt="pve-storage-id", opt=1)})
QEMU_CLONE = dict(GUEST, newid=VMID, name=Str(fmt="dns-name", opt=1),
                  description=Str(opt=1), pool=Str(fmt="pve-poolid", opt=1),
                  snapname=Str(fmt="pve-configid", maxlen=40, opt=1),
                  storage=Str(fmt="pve-storage-id", opt=1),
                  format=Str(enum=["raw", "qcow2", "vmdk"], opt=1), full=Bool(opt=1),
                  target=Str(fmt="pve-node", opt=1), bwlimit=Int(0, opt=1))


class Route:
    __slots__ = ("method", "path", "handler", "params", "proxyto", "auth", "perm",
                 "regex", "names")

    def __init__(self, method, path, handler, params, proxyto="node", auth=True, perm=None):
        self.method = method
        self.path = path
        self.handler = handler
        self.params = params
        self.proxyto = proxyto      # as in the schema: calls for another node are proxied
        self.auth = auth
        # the schema's permissions.check (["perm", path, [privs]] or with "any", 1),
        # checked before the call runs; None: "user": "all" (or "world" without auth),
        # and the handler checks whatever the description says
        self.perm = perm
        self.names = re.findall(r"\{(\w+)\}", path)
        self.regex = re.compile("^" + re.sub(r"\\\{\w+\\\}", "([^/]+)", re.escape(path)) + "$")


VMS = "/vms/{vmid}"
VM_AUDIT = ["perm", VMS, ["VM.Audit"]]
VM_POWER = ["perm", VMS, ["VM.PowerMgmt"]]
VM_ALLOCATE = ["perm", VMS, ["VM.Allocate"]]
VM_SNAPSHOT = ["perm", VMS, ["VM.Snapshot"]]
VM_ROLLBACK = ["perm", VMS, ["VM.Snapshot", "VM.Snapshot.Rollback"], "any", 1]
VM_CONSOLE = ["perm", VMS, ["VM.Console"]]
VM_CONFIG = ["perm", VMS, ["VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory",
                           "VM.Config.Network", "VM.Config.Options"], "any", 1]
VM_CONFIG_QEMU = ["perm", VMS, ["VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU",
                                "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
                                "VM.Config.Options", "VM.Config.Cloudinit"], "any", 1]
# clone_vm: VM.Clone on the source and VM.Allocate on the new id (or on the pool)
VM_CLONE = ["and", ["perm", VMS, ["VM.Clone"]],
            ["or", ["perm", "/vms/{newid}", ["VM.Allocate"]],
             ["perm", "/pool/{pool}", ["VM.Allocate"], "require_param", "pool"]]]
NODE_AUDIT = ["perm", "/nodes/{node}", ["Sys.Audit"]]
STORAGE_READ = ["perm", "/storage/{storage}", ["Datastore.Audit", "Datastore.AllocateSpace"],
                "any", 1]

VNCWEBSOCKET = dict(GUEST, vncticket=Str(maxlen=512), port=Int(5900, 5999))

R = Route
ROUTES = [
    R("GET", "/version", "version", {}, proxyto=None),
    R("GET", "/access/ticket", "get_ticket", {}, proxyto=None, auth=False),
    R("POST", "/access/ticket", "create_ticket", {
        "username": Str(maxlen=64), "password": Str(),
        "realm": Str(fmt="pve-realm", maxlen=32, opt=1),
        "otp": Str(opt=1), "new-format": Bool(opt=1),
        "path": Str(maxlen=64, requires="privs", opt=1),
        "privs": Str(fmt="pve-priv-list", maxlen=64, requires="path", opt=1),
        "tfa-challenge": Str(opt=1)}, proxyto=None, auth=False),
    # what termproxy (--vncticket-endpoint) asks to check the "user:ticket" line
    R("POST", "/access/vncticket", "access_vncticket", {
        "authid": Str(maxlen=64), "vncticket": Str(), "path": Str(maxlen=64),
        "privs": Str(fmt="pve-priv-list", maxlen=64), "port": Int(opt=1)},
      proxyto=None, auth=False),
    R("GET", "/access/permissions", "access_permissions", {
        "path": Str(opt=1),
        "userid": Str(pattern="(?^:^(?^:[^\\s:/]+)\\@(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)"
                              "(?:!(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+))?$)", opt=1)},
      proxyto=None),
    R("GET", "/cluster/nextid", "nextid", {"vmid": Int(100, 999999999, fmt="pve-vmid", opt=1)},
      proxyto=None),
    R("GET", "/cluster/resources", "resources",
      {"type": Str(enum=["vm", "storage", "node", "sdn"], opt=1)}, proxyto=None),
    R("GET", "/cluster/tasks", "cluster_tasks", {}, proxyto=None),
    R("GET", "/cluster/status", "cluster_status", {}, proxyto=None,
      perm=["perm", "/", ["Sys.Audit"]]),
    R("GET", "/nodes", "nodes", {}, proxyto=None),
    R("GET", "/nodes/{node}/status", "node_status", {"node": NODE}, perm=NODE_AUDIT),
    R("GET", "/nodes/{node}/rrddata", "node_rrddata", {
        "node": NODE, "cf": CF,
        "timeframe": Str(enum=["hour", "day", "week", "month", "year", "decade"])},
      proxyto=None, perm=NODE_AUDIT),
    # storage
    R("GET", "/nodes/{node}/storage", "storage_index", {
        "node": NODE, "content": Str(fmt="pve-storage-content-list", opt=1),
        "enabled": Bool(opt=1), "format": Bool(opt=1),
        "storage": Str(fmt="pve-storage-id", opt=1), "target": Str(fmt="pve-node", opt=1)}),
    R("GET", "/nodes/{node}/storage/{storage}", "storage_diridx", STORAGE, proxyto=None,
      perm=STORAGE_READ),
    R("GET", "/nodes/{node}/storage/{storage}/status", "storage_read_status", STORAGE,
      perm=STORAGE_READ),
    R("GET", "/nodes/{node}/storage/{storage}/content", "storage_content", dict(
        STORAGE, content=Str(fmt="pve-storage-content", opt=1),
        vmid=Int(100, 999999999, fmt="pve-vmid", opt=1)), perm=STORAGE_READ),
    # tasks
    R("GET", "/nodes/{node}/tasks", "node_tasks", {
        "node": NODE, "vmid": Int(100, 999999999, fmt="pve-vmid", opt=1),
        "errors": Bool(opt=1), "limit": Int(0, opt=1), "start": Int(0, opt=1),
        "since": Int(opt=1), "until": Int(opt=1),
        "source": Str(enum=["archive", "active", "all"], opt=1),
        "statusfilter": Str(fmt="pve-task-status-type-list", opt=1),
        "typefilter": Str(opt=1), "userfilter": Str(opt=1)}),
    R("GET", "/nodes/{node}/tasks/{upid}", "task_index", TASK, proxyto=None),
    R("DELETE", "/nodes/{node}/tasks/{upid}", "task_stop", TASK),
    R("GET", "/nodes/{node}/tasks/{upid}/log", "task_log", dict(
        TASK, start=Int(0, opt=1), limit=Int(0, opt=1), download=Bool(opt=1))),
    R("GET", "/nodes/{node}/tasks/{upid}/status", "task_status", TASK),
    # LXC
    R("GET", "/nodes/{node}/lxc", "lxc_list", {"node": NODE}),
    R("POST", "/nodes/{node}/lxc", "lxc_create", LXC_CREATE),
    R("GET", "/nodes/{node}/lxc/{vmid}", "lxc_index", GUEST),
    R("DELETE", "/nodes/{node}/lxc/{vmid}", "lxc_destroy", dict(
        GUEST, purge=Bool(opt=1), force=Bool(opt=1),
        **{"destroy-unreferenced-disks": Bool(opt=1)}), perm=VM_ALLOCATE),
    R("GET", "/nodes/{node}/lxc/{vmid}/config", "lxc_config", dict(
        GUEST, current=Bool(opt=1), snapshot=Str(fmt="pve-configid", maxlen=40, opt=1)),
      perm=VM_AUDIT),
    R("PUT", "/nodes/{node}/lxc/{vmid}/config", "lxc_update", LXC_UPDATE,
      perm=VM_CONFIG),
    R("GET", "/nodes/{node}/lxc/{vmid}/pending", "lxc_pending", GUEST, perm=VM_AUDIT),
    R("GET", "/nodes/{node}/lxc/{vmid}/interfaces", "lxc_interfaces", GUEST, perm=VM_AUDIT),
    R("GET", "/nodes/{node}/lxc/{vmid}/status", "lxc_status_index", GUEST),
    R("GET", "/nodes/{node}/lxc/{vmid}/status/current", "lxc_status", GUEST, perm=VM_AUDIT),
    R("POST", "/nodes/{node}/lxc/{vmid}/status/start", "lxc_start", dict(
        GUEST, skiplock=Bool(opt=1), debug=Bool(opt=1)), perm=VM_POWER),
    R("POST", "/nodes/{node}/lxc/{vmid}/status/stop", "lxc_stop", dict(
        GUEST, skiplock=Bool(opt=1), **{"overrule-shutdown": Bool(opt=1)}), perm=VM_POWER),
    R("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown", "lxc_shutdown", dict(
        GUEST, timeout=Int(0, opt=1), forceStop=Bool(opt=1)), perm=VM_POWER),
    R("POST", "/nodes/{node}/lxc/{vmid}/status/reboot", "lxc_reboot", dict(
        GUEST, timeout=Int(0, opt=1)), perm=VM_POWER),
    R("POST", "/nodes/{node}/lxc/{vmid}/status/suspend", "lxc_suspend", GUEST, perm=VM_POWER),
    R("POST", "/nodes/{node}/lxc/{vmid}/status/resume", "lxc_resume", GUEST, perm=VM_POWER),
    R("PUT", "/nodes/{node}/lxc/{vmid}/resize", "lxc_resize", dict(
        GUEST, digest=Str(maxlen=40, opt=1),
        disk=Str(enum=["rootfs"] + ["mp%d" % i for i in range(MAX_MOUNT_POINTS)]),
        size=Str(pattern="\\+?\\d+(\\.\\d+)?[KMGT]?")),
      perm=["perm", VMS, ["VM.Config.Disk"], "any", 1]),
    R("GET", "/nodes/{node}/lxc/{vmid}/snapshot", "snapshot_list", GUEST, perm=VM_AUDIT),
    R("POST", "/nodes/{node}/lxc/{vmid}/snapshot", "snapshot_create", dict(
        GUEST, snapname=SNAPNAME, description=Str(opt=1)), perm=VM_SNAPSHOT),
    R("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", "snapshot_index", SNAP,
      proxyto=None),
    R("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", "snapshot_delete",
      dict(SNAP, force=Bool(opt=1)), perm=VM_SNAPSHOT),
    R("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config", "snapshot_config", SNAP,
      perm=["perm", VMS, ["VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit"], "any", 1]),
    R("PUT", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config", "snapshot_update",
      dict(SNAP, description=Str(opt=1)), perm=VM_SNAPSHOT),
    R("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback", "snapshot_rollback",
      dict(SNAP, start=Bool(opt=1)), perm=VM_ROLLBACK),
    R("GET", "/nodes/{node}/lxc/{vmid}/rrddata", "guest_rrddata", dict(
        GUEST, timeframe=TIMEFRAME, cf=CF), proxyto=None, perm=VM_AUDIT),
    R("POST", "/nodes/{node}/lxc/{vmid}/vncproxy", "vncproxy", dict(
        GUEST, websocket=Bool(opt=1), width=Int(16, 4096, opt=1),
        height=Int(16, 2160, opt=1)), proxyto=None, perm=VM_CONSOLE),
    R("POST", "/nodes/{node}/lxc/{vmid}/termproxy", "termproxy", GUEST, proxyto=None,
      perm=VM_CONSOLE),
    R("GET", "/nodes/{node}/lxc/{vmid}/vncwebsocket", "vncwebsocket", VNCWEBSOCKET,
      proxyto=None, perm=VM_CONSOLE),
    # QEMU: the cheap equivalents
    R("GET", "/nodes/{node}/qemu", "qemu_list", {"node": NODE, "full": Bool(opt=1)}),
    R("GET", "/nodes/{node}/qemu/{vmid}", "qemu_index", GUEST),
    R("DELETE", "/nodes/{node}/qemu/{vmid}", "qemu_destroy", dict(
        GUEST, purge=Bool(opt=1), skiplock=Bool(opt=1),
        **{"destroy-unreferenced-disks": Bool(opt=1)}), perm=VM_ALLOCATE),
    R("GET", "/nodes/{node}/qemu/{vmid}/config", "qemu_config", dict(
        GUEST, current=Bool(opt=1), snapshot=Str(fmt="pve-configid", maxlen=40, opt=1)),
      perm=VM_AUDIT),
    R("POST", "/nodes/{node}/qemu/{vmid}/config", "qemu_update_async", QEMU_UPDATE_ASYNC,
      perm=VM_CONFIG_QEMU),
    R("PUT", "/nodes/{node}/qemu/{vmid}/config", "qemu_update_sync", QEMU_UPDATE,
      perm=VM_CONFIG_QEMU),
    R("GET", "/nodes/{node}/qemu/{vmid}/pending", "qemu_pending", GUEST, perm=VM_AUDIT),
    R("POST", "/nodes/{node}/qemu/{vmid}/clone", "qemu_clone", QEMU_CLONE, perm=VM_CLONE),
    R("POST", "/nodes/{node}/qemu/{vmid}/template", "qemu_template", dict(
        GUEST, disk=Str(enum=QEMU_DISK_NAMES, opt=1)), perm=VM_ALLOCATE),
    R("PUT", "/nodes/{node}/qemu/{vmid}/resize", "qemu_resize", dict(
        GUEST, digest=Str(maxlen=40, opt=1), disk=Str(enum=QEMU_DISK_NAMES),
        size=Str(pattern="\\+?\\d+(\\.\\d+)?[KMGT]?"), skiplock=Bool(opt=1)),
      perm=["perm", VMS, ["VM.Config.Disk"]]),
    R("GET", "/nodes/{node}/qemu/{vmid}/status/current", "qemu_status", GUEST, perm=VM_AUDIT),
    R("POST", "/nodes/{node}/qemu/{vmid}/status/start", "qemu_start", dict(
        GUEST, skiplock=Bool(opt=1), timeout=Int(0, opt=1),
        machine=PropStr(QEMU_MACHINE_KEYS, opt=1),
        migratedfrom=Str(fmt="pve-node", opt=1),
        migration_network=Str(fmt="CIDR", opt=1),
        migration_type=Str(enum=["secure", "insecure"], opt=1),
        stateuri=Str(maxlen=128, opt=1),
        targetstorage=Str(fmt="storage-pair-list", opt=1),
        **{"force-cpu": Str(opt=1),
           "nets-host-mtu": Str(pattern="net\\d+=\\d+(,net\\d+=\\d+)*", opt=1),
           "with-conntrack-state": Bool(opt=1)}), perm=VM_POWER),
    R("POST", "/nodes/{node}/qemu/{vmid}/status/stop", "qemu_stop", dict(
        GUEST, skiplock=Bool(opt=1), timeout=Int(0, opt=1), keepActive=Bool(opt=1),
        migratedfrom=Str(fmt="pve-node", opt=1), **{"overrule-shutdown": Bool(opt=1)}),
      perm=VM_POWER),
    R("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown", "qemu_shutdown", dict(
        GUEST, skiplock=Bool(opt=1), timeout=Int(0, opt=1), keepActive=Bool(opt=1),
        forceStop=Bool(opt=1)), perm=VM_POWER),
    R("POST", "/nodes/{node}/qemu/{vmid}/status/reboot", "qemu_reboot", dict(
        GUEST, timeout=Int(0, opt=1)), perm=VM_POWER),
    R("POST", "/nodes/{node}/qemu/{vmid}/status/suspend", "qemu_suspend", dict(
        GUEST, skiplock=Bool(opt=1), todisk=Bool(opt=1),
        statestorage=Str(fmt="pve-storage-id", requires="todisk", opt=1)), perm=VM_POWER),
    R("POST", "/nodes/{node}/qemu/{vmid}/status/resume", "qemu_resume", dict(
        GUEST, skiplock=Bool(opt=1), nocheck=Bool(opt=1)), perm=VM_POWER),
    R("GET", "/nodes/{node}/qemu/{vmid}/snapshot", "snapshot_list", GUEST, perm=VM_AUDIT),
    R("POST", "/nodes/{node}/qemu/{vmid}/snapshot", "snapshot_create", dict(
        GUEST, snapname=SNAPNAME, description=Str(opt=1), vmstate=Bool(opt=1)),
      perm=VM_SNAPSHOT),
    R("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", "snapshot_delete",
      dict(SNAP, force=Bool(opt=1)), perm=VM_SNAPSHOT),
    R("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback", "snapshot_rollback",
      dict(SNAP, start=Bool(opt=1)), perm=VM_ROLLBACK),
    R("GET", "/nodes/{node}/qemu/{vmid}/rrddata", "guest_rrddata", dict(
        GUEST, timeframe=TIMEFRAME, cf=CF), proxyto=None, perm=VM_AUDIT),
    R("POST", "/nodes/{node}/qemu/{vmid}/vncproxy", "vncproxy", dict(
        GUEST, websocket=Bool(opt=1), **{"generate-password": Bool(opt=1)}), proxyto=None,
      perm=VM_CONSOLE),
    R("POST", "/nodes/{node}/qemu/{vmid}/termproxy", "termproxy", dict(
        GUEST, serial=Str(enum=["serial0", "serial1", "serial2", "serial3"], opt=1)),
      proxyto=None, perm=VM_CONSOLE),
    R("GET", "/nodes/{node}/qemu/{vmid}/vncwebsocket", "vncwebsocket", VNCWEBSOCKET,
      proxyto=None, perm=VM_CONSOLE),
    R("POST", "/nodes/{node}/qemu/{vmid}/agent/ping", "qemu_agent_ping", GUEST,
      perm=["perm", VMS, ["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"], "any", 1]),
    R("POST", "/nodes/{node}/qemu/{vmid}/agent/set-user-password", "qemu_set_password", dict(
        GUEST, username=Str(), password=Str(minlen=5, maxlen=1024), crypted=Bool(opt=1)),
      perm=["perm", VMS, ["VM.GuestAgent.Unrestricted"]]),
]
del R

ROUTES_BY_KEY = {(r.method, r.path): r for r in ROUTES}


# ==========================================================================
# Errors, as PVE's REST handler turns them into responses.

class ApiError(Exception):
    """An error response: status line "<status> <first line of message>"."""

    def __init__(self, status, message, errors=None, body=True, close=False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.body = body          # False: empty body (401s, 59x from the proxy)
        self.close = close        # close the connection after answering


def die(message):
    """A plain Perl ``die`` in a handler: 500 with the message."""
    raise ApiError(500, message)


def param_error(errors):
    raise ApiError(400, "Parameter verification failed.", errors=errors)


def perm_error(what=None):
    """PVE::Exception::raise_perm_exc: 403 "Permission check failed[ (what)]"."""
    return ApiError(403, "Permission check failed" + (" (%s)" % what if what else ""))


def normalize_acl_path(path):
    """PVE::AccessControl::normalize_path."""
    path = re.sub(r"/+", "/", path or "").rstrip("/") or "/"
    return path if path.startswith("/") else "/" + path


class TaskError(Exception):
    """A failure inside a worker task (ends as exitstatus = the message)."""


class RawJson:
    """A response whose body was already serialised (the resources cache)."""

    def __init__(self, body):
        self.body = body


# ==========================================================================
# Small helpers

def now():
    return time.time()


def stable_hash(*parts):
    """Deterministic 64-bit number from the parts (not Python's salted hash)."""
    h = hashlib.sha1("\0".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big")


def unit_float(*parts):
    return stable_hash(*parts) / float(1 << 64)


def format_size(size):
    """PVE::JSONSchema::format_size: the largest unit that divides exactly."""
    for unit, factor in (("T", 1024 ** 4), ("G", GiB), ("M", MiB), ("K", 1024)):
        if size % factor == 0:
            return "%d%s" % (size // factor, unit)
    return str(size)


def parse_size(text):
    """PVE::JSONSchema::parse_size: number with optional K/M/G/T; bytes otherwise."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT])?", text)
    if not m:
        return None
    factor = {"K": 1024, "M": MiB, "G": GiB, "T": 1024 ** 4}.get(m.group(2), 1)
    return int(float(m.group(1)) * factor)


def guest_mac(vmid, index):
    h = stable_hash("mac", vmid, index)
    return "BC:24:11:%02X:%02X:%02X" % ((h >> 16) & 255, (h >> 8) & 255, h & 255)


def guest_ipv4(vmid):
    """The deterministic address a guest's DHCP lease gets: 10.a.b.c/16."""
    return "10.%d.%d.%d" % ((vmid >> 16) & 255, (vmid >> 8) & 255, vmid & 255)


def link_local(mac):
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 2
    eui = b[:3] + [0xFF, 0xFE] + b[3:]
    groups = ["%x" % (eui[i] << 8 | eui[i + 1]) for i in range(0, 8, 2)]
    return "fe80::" + ":".join(groups)


def is_cdrom(drive):
    """drive_is_cdrom: media=cdrom (a cloud-init disk too), or the drive of 'cdrom'/'none'."""
    parts = str(drive).split(",")
    return "media=cdrom" in parts or parts[0] in ("cdrom", "none")


def is_cloudinit(drive):
    """drive_is_cloudinit: the volume name ends in vm-<vmid>-cloudinit[.<format>]."""
    return re.search(r"(?:^|[:/])vm-\d+-cloudinit(?:\.\w+)?$", str(drive).split(",")[0]) \
        is not None


def lock_path(guest):
    if guest.kind == "lxc":
        return "/run/lock/lxc/pve-config-%d.lock" % guest.vmid
    return "/var/lock/qemu-server/lock-%d.conf" % guest.vmid


# ==========================================================================
# The model: nodes, storages, guests, tasks

# The OS templates every node's 'local' storage holds by default: the one the
# project's tests use and every one in sql/seed/demo.sql.
DEFAULT_TEMPLATES = (
    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    "local:vztmpl/ubuntu-22.04-standard_22.04-1_amd64.tar.zst",
    "local:vztmpl/almalinux-9-default_20240911_amd64.tar.xz",
)
# PVE::Storage VZTMPL_EXT_RE_1; the volume's format is "t" + the compression
VZTMPL_RE = re.compile(r"([^/]+\.tar\.(gz|xz|zst|bz2))\Z", re.I)
# the content types in the order volume_list walks them
CONTENT_ORDER = ("rootdir", "images", "vztmpl", "iso", "backup", "snippets", "import")
# disk formats per storage type (plugindata 'format': supported, default)
STORAGE_FORMATS = {"dir": (["qcow2", "raw", "subvol", "vmdk"], "raw"),
                   "nfs": (["qcow2", "raw", "subvol", "vmdk"], "raw"),
                   "lvmthin": (["raw", "subvol"], "raw"),
                   "rbd": (["raw"], "raw")}
FILE_STORAGES = ("dir", "nfs")          # volumes are files: <vmid>/vm-<vmid>-disk-N.<fmt>
DISK_KEY_RE = re.compile(r"(rootfs|mp\d+|unused\d+|scsi\d+|virtio\d+|sata\d+|ide\d+|"
                         r"efidisk\d+|tpmstate\d+)\Z")
QEMU_DRIVE_RE = re.compile(r"(ide\d+|scsi\d+|virtio\d+|sata\d+|efidisk0|tpmstate0)\Z")
# guest volumes, linked clones (<base volume>/<volume>) and cloud-init disks included
GUEST_VOL_RE = re.compile(
    r"([A-Za-z][\w.-]*):((?:(?:\d+/)?base-\d+-disk-\d+(?:\.(?:raw|qcow2|vmdk))?/)?"
    r"(?:\d+/)?(?:vm|base|subvol)-(\d+)-(?:disk-\d+|cloudinit)(?:\.(raw|qcow2|vmdk))?)\Z")


class Storage:
    def __init__(self, sid, kind, content, total, base_used=0):
        self.sid = sid
        self.kind = kind            # "dir" or "lvmthin"
        self.content = content      # set of content types
        self.total = total
        self.base_used = base_used  # bytes used by other things (the root fs for 'local')
        self.enabled = True         # not "disable" in storage.cfg
        self.active = True          # activate_storage works
        self.shared = False         # one storage seen by every node (same object on each)
        self.files = OrderedDict()  # volid -> {"content", "format", "size", "ctime"}

    def add_template(self, volid, ctime):
        m = VZTMPL_RE.search(volid)
        if not volid.startswith(self.sid + ":vztmpl/") or not m or \
                "/" in volid.split(":vztmpl/", 1)[1]:
            raise ValueError("not a template volume of storage '%s': %r" % (self.sid, volid))
        if "vztmpl" not in self.content:
            raise ValueError("storage '%s' does not hold vztmpl content" % self.sid)
        self.files[volid] = {"content": "vztmpl", "format": "t" + m.group(2).lower(),
                             "size": int(100 * MiB + 100 * MiB * unit_float("tmpl", volid)),
                             "ctime": int(ctime)}


def default_storages(started):
    local = Storage("local", "dir", {"iso", "vztmpl", "backup"}, 96 * GiB, 9 * GiB)
    for volid in DEFAULT_TEMPLATES:
        local.add_template(volid, started - 40 * 86400)
    return {
        "local": local,
        "local-lvm": Storage("local-lvm", "lvmthin", {"images", "rootdir"}, 1024 * GiB),
    }


class Node:
    def __init__(self, name, index, started, cpus=16, memory=128 * GiB):
        self.name = name
        self.index = index
        self.nodeid = index + 1
        self.ip = "192.168.100.%d" % (11 + index)
        self.online = True
        self.cpus = cpus
        self.memory = memory        # maxmem
        self.base_mem = 3 * GiB     # used by the host itself, without guests
        self.base_cpu = 0.02        # load of the host itself (fraction of all CPUs)
        self.boot = now() - 12 * 86400 - 3600 * index
        self.storages = default_storages(started)
        self.next_pid = 100000 + 1000 * index

    def templates(self):
        return [v for st in self.storages.values() for v, f in st.files.items()
                if f["content"] == "vztmpl"]


class FLock:
    """A guest's config file lock (flock on lock_path): exclusive, or shared by
    several holders (lock_config_shared, as a clone holds its source).  Any thread
    may release it, as a forked worker holds the lock its parent took."""

    def __init__(self):
        self.cond = threading.Condition(threading.Lock())
        self.exclusive = False
        self.shared = 0

    def acquire(self, blocking=True, timeout=-1, shared=False):
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        with self.cond:
            while self.exclusive or (not shared and self.shared):
                if not blocking:
                    return False
                if deadline is None:
                    self.cond.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self.cond.wait(left)
            if shared:
                self.shared += 1
            else:
                self.exclusive = True
            return True

    def release(self):
        with self.cond:
            if self.exclusive:
                self.exclusive = False
            elif self.shared:
                self.shared -= 1
            else:
                raise RuntimeError("release of an unlocked config lock")
            self.cond.notify_all()

    def held(self):
        with self.cond:
            return "exclusive" if self.exclusive else "shared" if self.shared else None


class Guest:
    """One LXC container or QEMU VM: its config (as pmxcfs holds it) and the
    runtime state the node would report."""

    def __init__(self, vmid, kind, node, conf):
        self.vmid = vmid
        self.kind = kind                    # "lxc" or "qemu"
        self.node = node
        self.conf = conf                    # OrderedDict: key -> str|int|float
        self.pending = {}                   # key -> value (applied at next start)
        self.pending_delete = set()
        self.snapshots = OrderedDict()      # name -> dict
        self.status = "stopped"
        self.started = None                 # epoch of the last start
        self.status_changed = now()
        self.created = now()
        self.pid = None
        self.paused = False
        self.flock = FLock()                # the config file lock (flock)
        # Usage while running; /_sim/guest may override them.
        self.cpu_base = round(0.01 + 0.2 * unit_float("cpu", vmid), 4)
        self.mem_frac = 0.2 + 0.4 * unit_float("mem", vmid)
        self.disk_frac = 0.1 + 0.3 * unit_float("disk", vmid)
        self.cpu_override = None
        self.mem_override = None
        self.disk_override = None
        self.net_rate = int(2000 + 50000 * unit_float("net", vmid))
        self.io_rate = int(5000 + 200000 * unit_float("io", vmid))
        self.shutdown_hangs = False         # ignores ACPI/clean shutdown
        self.agent_running = True           # QEMU guest agent answers
        self.passwords = {}                 # user -> record (never the password)
        self.ssh_keys = None
        self.ci_secret = None               # cipassword's record: {"sha256"} or {"hash"}
        self.cloudinit = None               # the cloud-init data generated at the last start
        self.usage_changed = 0.0            # when /_sim/guest last set usage

    # --- config helpers -------------------------------------------------
    def label(self):
        return "CT" if self.kind == "lxc" else "VM"

    def lock(self):
        return self.conf.get("lock")

    def lock_error(self):
        """AbstractConfig::check_lock's message, or None when unlocked."""
        lock = self.conf.get("lock")
        return "%s is locked (%s)" % (self.label(), lock) if lock else None

    def name(self):
        if self.kind == "lxc":
            return self.conf.get("hostname") or "CT%d" % self.vmid
        return self.conf.get("name") or "VM %d" % self.vmid     # vmstatus's default

    def config_path(self, node=None):
        sub = "lxc" if self.kind == "lxc" else "qemu-server"
        return "nodes/%s/%s/%d.conf" % (node or self.node, sub, self.vmid)

    def effective_conf(self):
        conf = OrderedDict(self.conf)
        conf.update(self.pending)
        for k in self.pending_delete:
            conf.pop(k, None)
        return conf

    def digest(self):
        text = []
        for k, v in self.conf.items():
            text.append("%s: %s" % (k, v))
        for k, v in sorted(self.pending.items()):
            text.append("[pending] %s: %s" % (k, v))
        if self.pending_delete:
            text.append("[pending] delete: %s" % ",".join(sorted(self.pending_delete)))
        for name, snap in self.snapshots.items():
            text.append("[%s] %s" % (name, json.dumps(snap["conf"], sort_keys=True)))
        return hashlib.sha1("\n".join(text).encode()).hexdigest()

    def apply_pending(self):
        for k, v in self.pending.items():
            self.conf[k] = v
        for k in self.pending_delete:
            self.conf.pop(k, None)
        self.pending.clear()
        self.pending_delete.clear()

    # --- sizes ------------------------------------------------------------
    def cores(self, node_cpus):
        if self.kind == "qemu":
            # vmstatus: sockets * cores, at most the node's CPUs; vcpus wins
            if self.conf.get("vcpus"):
                return int(self.conf["vcpus"])
            return min(node_cpus, int(self.conf.get("cores") or 1) *
                       int(self.conf.get("sockets") or 1))
        return self.conf.get("cores") or node_cpus

    def maxmem(self):
        mem = self.conf.get("memory", 512)
        if isinstance(mem, str):                        # QEMU: "[current=]<MiB>"
            mem = int(mem.split("=")[-1].split(",")[0])
        return int(mem) * MiB

    def maxswap(self):
        return int(self.conf.get("swap", 512)) * MiB

    def root_key(self):
        """rootfs, or the VM's boot disk (bootdisk_size: the first disk of the boot
        order that is not a CD-ROM)."""
        if self.kind == "lxc":
            return "rootfs"
        order = []
        m = re.search(r"order=([^,]+)", str(self.conf.get("boot", "")))
        if m:
            order = [x for x in re.split(r"[;,\s]+", m.group(1)) if x]
        elif self.conf.get("bootdisk"):
            order = [self.conf["bootdisk"]]
        for k in order + ["scsi0", "virtio0", "sata0", "ide0"]:
            if QEMU_DRIVE_RE.match(k) and k in self.conf and not is_cdrom(self.conf[k]):
                return k
        return None

    def maxdisk(self):
        key = self.root_key()
        if not key or key not in self.conf:
            return 0
        m = re.search(r"(?:^|,)size=([^,]+)", str(self.conf[key]))
        return parse_size(m.group(1)) if m else 0

    def uptime(self):
        return int(now() - self.started) if self.status == "running" and self.started else 0

    def stats(self, node_cpus):
        """What pvestatd / vmstatus would read right now."""
        running = self.status == "running"
        up = self.uptime()
        maxmem = self.maxmem()
        maxdisk = self.maxdisk()
        if running:
            cpu = self.cpu_override if self.cpu_override is not None else self.cpu_base
            mem = self.mem_override if self.mem_override is not None else int(maxmem * self.mem_frac)
        else:
            cpu, mem = 0, 0
        if self.kind == "qemu":
            disk = 0                        # vmstatus: "no info available" for VMs
        elif self.disk_override is not None:
            disk = self.disk_override
        else:
            disk = int(maxdisk * self.disk_frac) if running else 0
        return {
            "status": self.status, "uptime": up, "cpu": cpu,
            "cpus": self.cores(node_cpus), "mem": mem, "maxmem": maxmem,
            "disk": disk, "maxdisk": maxdisk,
            "netin": self.net_rate * up, "netout": (self.net_rate // 3) * up,
            "diskread": self.io_rate * up if running else 0,
            "diskwrite": (self.io_rate // 2) * up if running else 0,
        }


class Task:
    """A worker task (fork_worker): UPID, status and log."""

    def __init__(self, sim, node, ttype, tid, user, pid, pstart):
        self.sim = sim
        self.node = node
        self.type = ttype
        self.id = tid
        self.user = user
        self.pid = pid
        self.pstart = pstart
        self.starttime = int(now())
        self.upid = "UPID:%s:%08X:%08X:%08X:%s:%s:%s:" % (
            node, pid, pstart, self.starttime, ttype, tid, user)
        self.status = "running"
        self.exitstatus = None
        self.endtime = None
        self.lines = []
        self.abort = threading.Event()
        self.vmid = int(tid) if tid.isdigit() else None

    def log(self, line):
        self.lines.append(line)

    def sleep(self, seconds):
        """Work for ``seconds`` (scaled by --time-scale); DELETE on the task interrupts."""
        if self.abort.wait(max(0.0, seconds * self.sim.time_scale)):
            raise TaskError("received interrupt")

    def work(self, seconds=None):
        self.sleep(DURATIONS.get(self.type, 1.0) if seconds is None else seconds)

    def injected_failure(self):
        """Raise the error a /_sim/fault {"kind":"task_error"} asked for, if any."""
        msg = self.sim.take_task_fault(self)
        if msg is not None:
            raise TaskError(msg)

    def info(self):
        d = {"upid": self.upid, "node": self.node, "pid": self.pid,
             "pstart": self.pstart, "starttime": self.starttime, "type": self.type,
             "id": self.id, "status": self.status}
        user, _, tokenid = self.user.partition("!")
        d["user"] = user
        if tokenid:
            d["tokenid"] = tokenid
        if self.status == "stopped":
            d["exitstatus"] = self.exitstatus
        return d

    def list_entry(self):
        d = self.info()
        d.pop("exitstatus", None)
        if self.status == "stopped":
            d["endtime"] = self.endtime
            d["status"] = self.exitstatus
        else:
            d.pop("status")
        return d


# ==========================================================================
# The simulator state

FAULT_KINDS = ("latency", "status", "drop", "task_error", "clear")
PROXY_REASONS = {595: "No route to host", 596: "TLS handshake failed",
                 597: "Connection reset by peer", 598: "Request cancelled",
                 599: "Internal error"}


class Sim:
    """All simulated cluster state; one RLock guards it."""

    def __init__(self, nodes, tokens, users, time_scale=1.0, resources_lag=5.0,
                 auth_fail_delay=3.0, lock_timeout=10.0, guests=0, qemu_guests=0,
                 cluster_name="pvesim", node_cpus=16, node_memory=128 * GiB,
                 token_privs=None, qemu_templates=()):
        self.lock = threading.RLock()
        self.node_names = list(nodes)
        self.cluster_name = cluster_name
        self.node_cpus = node_cpus
        self.node_memory = node_memory
        self.tokens = dict(tokens)          # "user@realm!id" -> secret
        self.users = dict(users)            # "user@realm" -> password
        # "user@realm!id" -> frozenset of privileges on "/" (propagated); a token
        # missing here has them all (Administrator on "/")
        self.initial_token_privs = {t: frozenset(p) for t, p in (token_privs or {}).items()
                                    if p is not None}
        self.time_scale = time_scale
        self.resources_lag = resources_lag
        self.auth_fail_delay = auth_fail_delay
        self.lock_timeout = lock_timeout
        self.initial_guests = (guests, qemu_guests)
        self.initial_templates = [dict(t) for t in qemu_templates]    # --qemu-templates
        self.secret = secrets.token_bytes(32)
        self.ca_pem = ""
        self.fingerprint = ""
        self.started = now()
        self.res_stop = threading.Event()
        self.res_wake = threading.Event()
        # consoles (see ConsoleSession): how long a proxy waits for its client and for
        # termproxy's ticket line (10 s in termproxy, vncterm and qemu-server's vncproxy),
        # how long a PVEVNC ticket is valid (verify_short_lived_ticket: -20 < age < 40),
        # and the slow-reader delay before each WebSocket frame is read
        self.console_timeout = 10.0
        self.vnc_ticket_lifetime = 40.0
        self.console_read_delay = 0.0
        self.console_history = []           # ended sessions, newest last
        self.console_ports = {}             # (node, port) -> ConsoleSession
        self.reset()

    # --- life cycle -------------------------------------------------------
    def reset(self, guests=None, qemu_guests=None):
        with self.lock:
            for t in getattr(self, "tasks", {}).values():
                t.abort.set()
            for session in list(self.console_ports.values()):
                if session is not None:
                    session.drop()
            self.console_history = []
            self.nodes = OrderedDict(
                (n, Node(n, i, self.started, self.node_cpus, self.node_memory))
                for i, n in enumerate(self.node_names))
            self.guests = {}
            self.tasks = OrderedDict()
            self.faults = []
            self.fault_seq = 0
            self.token_privs = dict(self.initial_token_privs)
            self.requests = Counter()
            self.requests_by_path = Counter()
            self.console_ports = {}         # (node, port) -> session (None: reserved)
            self.state_gen = 0
            self.snap = {}
            self.snap_nodes = {}
            self.snap_time = 0.0
            self.snap_gen = 0
            self.res_cache = {}
            n_lxc, n_qemu = self.initial_guests
            if guests is not None:
                n_lxc = guests
            if qemu_guests is not None:
                n_qemu = qemu_guests
            self.populate(n_lxc, n_qemu)
            for spec in self.initial_templates:
                self.add_template_vm(**spec)
            self.refresh_resources()

    def populate(self, n_lxc, n_qemu):
        """Pre-existing guests, spread round-robin over the nodes, vmids from 100."""
        names = self.node_names
        for i in range(n_lxc + n_qemu):
            vmid = 100 + i
            node = names[i % len(names)]
            if i < n_lxc:
                g = self.make_lxc(vmid, node, {
                    "hostname": "ct%d" % vmid, "cores": 1 + (vmid % 4),
                    "memory": 512 * (1 + vmid % 4), "swap": 512,
                    "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
                    "rootfs": "local-lvm:%d" % (8 * (1 + vmid % 3))},
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")
            else:
                g = self.make_qemu(vmid, node, "vm%d" % vmid, cores=2, memory=2048, disk_gb=32)
            g.created = self.started - 30 * 86400
            if vmid % 5:                    # four in five run
                self.set_running(g, since=self.started - (3600 + stable_hash("up", vmid) % 864000))
            self.guests[vmid] = g
        self.changed()

    def changed(self):
        """Something /cluster/resources shows without lag (membership, lock, tags)."""
        self.state_gen += 1

    # --- guests -------------------------------------------------------------
    def storage(self, node, sid):
        st = self.nodes[node].storages.get(sid)
        if st is None:
            die("storage '%s' does not exist" % sid)
        return st

    def alloc_volume(self, guest, sid, node, fmt=None, taken=(), cloudinit=False):
        """The next free volume name on a storage, as vdisk_alloc names them
        (find_free_diskname); ``taken`` are names allocated but not yet in the config."""
        st = self.storage(node, sid)
        used = set()
        for value in list(guest.conf.values()) + list(guest.pending.values()) + list(taken):
            for m in re.finditer(r"(?:vm|base)-%d-disk-(\d+)" % guest.vmid, str(value)):
                used.add(int(m.group(1)))
        index = 0
        while index in used:
            index += 1
        name = "vm-%d-cloudinit" % guest.vmid if cloudinit else \
            "vm-%d-disk-%d" % (guest.vmid, index)
        if st.kind in FILE_STORAGES:
            fmt = fmt or ("qcow2" if cloudinit else STORAGE_FORMATS[st.kind][1])
            return "%s:%d/%s.%s" % (sid, guest.vmid, name, fmt)
        return "%s:%s" % (sid, name)

    def make_lxc(self, vmid, node, options, ostemplate, storage="local"):
        """Build a container's config as create_vm writes it (see lxc_create)."""
        g = Guest(vmid, "lxc", node, OrderedDict())
        conf = {}
        tmpl = ostemplate.rsplit("/", 1)[-1]
        ostype = tmpl.split("-", 1)[0].split("_", 1)[0].lower()
        conf["arch"] = options.pop("arch", "amd64")
        conf["ostype"] = options.pop("ostype", ostype if ostype in LXC_OPTIONS["ostype"].enum
                                     else "unmanaged")
        unprivileged = options.pop("unprivileged", 1)
        for key, value in options.items():
            if key.startswith("net") and key[3:].isdigit():
                value = self.normalize_net(vmid, key, value)
            if key == "rootfs" or (key.startswith("mp") and key[2:].isdigit()):
                continue
            conf[key] = value
        for key in ["rootfs"] + sorted(k for k in options if k.startswith("mp") and k[2:].isdigit()):
            spec = options.get(key, "%s:4" % storage if key == "rootfs" else None)
            if re.fullmatch(r"\d+(\.\d+)?", str(spec)):
                spec = "%s:%s" % (storage, spec)
            keys = ROOTFS_KEYS if key == "rootfs" else MP_KEYS
            mp = parse_property_string(keys, spec)
            m = re.fullmatch(r"([^:]+):(\d+(?:\.\d+)?)", mp["volume"])
            if m:
                size = int(float(m.group(2)) * GiB)
                mp["volume"] = self.alloc_volume(g, m.group(1), node)
                mp["size"] = format_size(size)
            elif "size" not in mp and not mp["volume"].startswith("/"):
                mp["size"] = "4G"           # an existing volume of unknown size
            conf[key] = print_property_string(keys, mp, first=("mp",))
            g.conf[key] = conf[key]         # so alloc_volume counts it
        conf.setdefault("hostname", "CT%d" % vmid)
        conf.setdefault("memory", 512)
        conf.setdefault("swap", 512)
        if unprivileged:
            conf["unprivileged"] = 1
        g.conf = OrderedDict(sorted(conf.items()))
        return g

    def make_qemu(self, vmid, node, name, cores=2, memory=2048, disk_gb=32):
        g = Guest(vmid, "qemu", node, OrderedDict())
        disk = self.alloc_volume(g, "local-lvm", node)
        g.conf = OrderedDict(sorted({
            "agent": "1", "boot": "order=scsi0;net0", "cores": cores, "cpu": "x86-64-v2-AES",
            "memory": str(memory), "meta": "creation-qemu=9.2.0,ctime=%d" % int(self.started),
            "name": name, "net0": "virtio=%s,bridge=vmbr0,firewall=1" % guest_mac(vmid, 0),
            "numa": 0, "ostype": "l26", "scsi0": "%s,iothread=1,size=%dG" % (disk, disk_gb),
            "scsihw": "virtio-scsi-single", "sockets": 1,
            "smbios1": "uuid=%s" % uuid.UUID(int=stable_hash("uuid", vmid) << 64 |
                                              stable_hash("uuid2", vmid)),
            "vmgenid": str(uuid.UUID(int=stable_hash("gen", vmid) << 64 | 1)),
        }.items()))
        return g

    def make_qemu_template(self, vmid, node, name, disk_gb=4, storage="local-lvm",
                           cores=2, memory=2048, bridge="vmbr0"):
        """A stopped VM template prepared for cloud-init, as `qm create … --scsi0
        <storage>:<size> --ide2 <storage>:cloudinit --agent 1 …` followed by `qm template`
        leaves it: the disk renamed to base-<vmid>-disk-0, the cloud-init disk kept."""
        st = self.nodes[node].storages.get(storage)
        if st is None:
            raise ValueError("storage '%s' does not exist on node %s" % (storage, node))
        if "images" not in st.content:
            raise ValueError("storage '%s' does not support vm images" % storage)
        g = Guest(vmid, "qemu", node, OrderedDict())
        fmt = "qcow2" if st.kind in FILE_STORAGES else None
        disk = self.alloc_volume(g, storage, node, fmt)
        base = disk.replace("vm-%d-disk-" % vmid, "base-%d-disk-" % vmid)
        cloudinit = self.alloc_volume(g, storage, node, cloudinit=True)
        g.conf = OrderedDict(sorted({
            "agent": "1", "boot": "order=scsi0", "cores": int(cores), "cpu": "x86-64-v2-AES",
            "ide2": "%s,media=cdrom" % cloudinit, "memory": str(int(memory)),
            "meta": "creation-qemu=%s,ctime=%d" % (QEMU_VERSION, int(self.started)),
            "name": name, "net0": "virtio=%s,bridge=%s" % (guest_mac(vmid, 0), bridge),
            "ostype": "l26", "scsi0": "%s,size=%s" % (base, format_size(int(disk_gb * GiB))),
            "scsihw": "virtio-scsi-pci", "serial0": "socket",
            "smbios1": "uuid=%s" % uuid.UUID(int=stable_hash("uuid", vmid) << 64 |
                                              stable_hash("uuid2", vmid)),
            "template": 1, "vga": "serial0",
            "vmgenid": str(uuid.UUID(int=stable_hash("gen", vmid) << 64 | 1)),
        }.items()))
        g.created = self.started - 20 * 86400
        return g

    def add_template_vm(self, vmid, name, node=None, disk_gb=4, storage="local-lvm", **kw):
        """Put a template made by make_qemu_template into the cluster (the control API
        and --qemu-templates)."""
        vmid = int(vmid)
        node = node or self.node_names[0]
        if node not in self.nodes:
            raise ValueError("unknown node %r" % node)
        if not 100 <= vmid <= 999999999:
            raise ValueError("vmid must be 100 - 999999999")
        if vmid in self.guests:
            raise ValueError("VM %d already exists" % vmid)
        if not re.fullmatch(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*"
                            r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?", str(name)):
            raise ValueError("name must be a DNS name (qemu-server's 'name' format)")
        g = self.make_qemu_template(vmid, node, str(name), float(disk_gb), storage, **kw)
        self.guests[vmid] = g
        self.changed()
        return g

    # --- cloud-init (qemu-server Cloudinit.pm) -----------------------------------
    @staticmethod
    def cloudinit_drive(conf):
        return next((k for k in sorted(conf) if QEMU_DRIVE_RE.match(k) and
                     is_cloudinit(conf[k])), None)

    def cloudinit_data(self, g, conf):
        """What the cloud-init drive of a VM holds when it is generated from ``conf``
        (at start): None without a cloud-init drive.  Never the password itself."""
        drive = self.cloudinit_drive(conf)
        if drive is None:
            return None
        keys = conf.get("sshkeys")
        return {
            "drive": drive, "citype": conf.get("citype", "nocloud"),
            "hostname": conf.get("name") or "VM%d" % g.vmid,
            "user": conf.get("ciuser"), "password": dict(g.ci_secret) if
            conf.get("cipassword") and g.ci_secret else None,
            "sshkeys": [k for k in urllib.parse.unquote(keys).split("\n") if k.strip()]
            if keys else [],
            "ipconfig": {k: conf[k] for k in sorted(conf) if re.fullmatch(r"ipconfig\d+", k)},
            "nameserver": conf.get("nameserver"), "searchdomain": conf.get("searchdomain"),
            "ciupgrade": int(conf.get("ciupgrade", 1)),
        }

    def cloudinit_boot(self, g):
        """At start the cloud-init drive is regenerated; a guest seeing new data (a new
        instance-id) applies it: the user's password and keys change."""
        data = self.cloudinit_data(g, g.conf)
        if data is None:
            return
        applied = dict(data)
        previous = dict(g.cloudinit or {})
        previous.pop("generated_at", None)
        g.cloudinit = dict(data, generated_at=now())
        if previous == applied:
            return                          # same instance: cloud-init does nothing
        user = data["user"] or "default"    # the image's default user
        if data["password"]:
            g.passwords[user] = dict(data["password"], changed_at=now(), source="cloudinit")
        if data["sshkeys"]:
            g.ssh_keys = "\n".join(data["sshkeys"])

    def normalize_net(self, vmid, key, value):
        """net[n] as PVE writes it: name first, a generated hwaddr and type=veth."""
        net = parse_property_string(NET_KEYS, value)
        net.setdefault("hwaddr", guest_mac(vmid, int(key[3:])))
        net.setdefault("type", "veth")
        return print_property_string(NET_KEYS, net, first=("name",))

    def guest(self, node, vmid, kind):
        """The guest, or the error PVE gives when its config file is missing."""
        g = self.guests.get(vmid)
        if g is None or g.kind != kind or g.node != node:
            sub = "lxc" if kind == "lxc" else "qemu-server"
            die("Configuration file 'nodes/%s/%s/%d.conf' does not exist" % (node, sub, vmid))
        return g

    def set_running(self, g, since=None):
        node = self.nodes[g.node]
        g.status = "running"
        g.started = since or now()
        g.status_changed = g.started
        g.paused = False
        g.pid = node.next_pid
        node.next_pid += 7

    def set_stopped(self, g):
        g.status = "stopped"
        g.started = None
        g.status_changed = now()
        g.paused = False
        g.pid = None

    def acquire_flock(self, g, timeout=None, shared=False, in_task=False):
        """lock_config (lock_file_full): wait up to lock_timeout (or timeout) for the
        config file lock, else "can't lock file '…' - got timeout" (a 500 in an API
        call, the exit status inside a task)."""
        if not g.flock.acquire(timeout=self.lock_timeout if timeout is None else timeout,
                               shared=shared):
            msg = "can't lock file '%s' - got timeout" % lock_path(g)
            if in_task:
                raise TaskError(msg)
            raise ApiError(500, msg)

    @contextlib.contextmanager
    def locked(self, g, timeout=None, shared=False, in_task=True):
        """``with sim.locked(g):`` runs the block under the guest's config file lock."""
        self.acquire_flock(g, timeout, shared, in_task)
        try:
            yield
        finally:
            g.flock.release()

    # --- tasks ----------------------------------------------------------------
    def spawn(self, node, ttype, tid, user, fn):
        """fork_worker: start ``fn(task)`` in a thread, return the Task at once."""
        with self.lock:
            n = self.nodes[node]
            pid = n.next_pid
            n.next_pid += 3
            pstart = int((now() - n.boot) * 100)
            task = Task(self, node, ttype, str(tid), user, pid, pstart)
            self.tasks[task.upid] = task
            while len(self.tasks) > 20000:
                oldest = next(iter(self.tasks))
                if self.tasks[oldest].status == "running":
                    break
                del self.tasks[oldest]
        threading.Thread(target=self._run_task, args=(task, fn), daemon=True,
                         name="task-%s" % ttype).start()
        return task

    def _run_task(self, task, fn):
        try:
            fn(task)
            exitstatus = "OK"
        except (TaskError, ApiError) as e:
            exitstatus = str(e).rstrip("\n")
        except Exception as e:          # a bug in the simulator: show it
            traceback.print_exc()
            exitstatus = "internal error: %s" % e
        with self.lock:
            task.log("TASK OK" if exitstatus == "OK" else "TASK ERROR: %s" % exitstatus)
            task.status = "stopped"
            task.exitstatus = exitstatus
            task.endtime = int(now())
            if task.type == "vncproxy":
                for key, session in list(self.console_ports.items()):
                    if session is not None and session.task is task:
                        del self.console_ports[key]
            self.changed()

    def find_task(self, node, upid):
        m = re.fullmatch(r"UPID:([a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-F]{8}):"
                         r"([0-9A-F]{8,9}):([0-9A-F]{8}):([^:\s]+):([^:\s]*):([^:\s]+):", upid)
        if not m:
            param_error({"upid": "unable to parse worker upid '%s'" % upid})
        task = self.tasks.get(upid)
        if task is None or task.node != node:
            param_error({"upid": "no such task"})
        return task

    def take_task_fault(self, task):
        with self.lock:
            for f in self.faults:
                if f["kind"] != "task_error" or f.get("remaining") == 0:
                    continue
                if f.get("type") not in (None, task.type):
                    continue
                if f.get("vmid") not in (None, task.vmid):
                    continue
                if f.get("remaining") is not None:
                    f["remaining"] -= 1
                f["hits"] += 1
                return f.get("message") or "simulated failure"
        return None

    # --- faults -----------------------------------------------------------------
    def add_fault(self, spec):
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError("kind must be one of %s" % ", ".join(FAULT_KINDS))
        with self.lock:
            if kind == "clear":
                n = len(self.faults)
                self.faults = []
                return {"cleared": n}
            f = {"id": self.fault_seq + 1, "kind": kind, "hits": 0,
                 "path_prefix": spec.get("path_prefix"), "method": spec.get("method"),
                 "remaining": spec.get("count")}
            if kind == "latency":
                f["seconds"] = float(spec.get("seconds", 30))
            elif kind == "status":
                code = int(spec.get("code", 500))
                f["code"] = code
                f["message"] = spec.get("message") or PROXY_REASONS.get(code, "simulated failure")
                if "body" in spec:
                    f["body"] = spec["body"]
            elif kind == "drop":
                f["mode"] = spec.get("mode", "close")
                if f["mode"] not in ("close", "reset"):
                    raise ValueError("mode must be close or reset")
            elif kind == "task_error":
                f["type"] = spec.get("type")
                f["vmid"] = int(spec["vmid"]) if spec.get("vmid") is not None else None
                f["message"] = spec.get("message")
            if f["path_prefix"] and not f["path_prefix"].startswith(("/api2/", "/_sim")):
                f["path_prefix"] = "/api2/json" + f["path_prefix"]
            self.fault_seq += 1
            self.faults.append(f)
            return f

    def match_faults(self, method, path):
        """The request faults (latency, status, drop) that apply, consuming counts."""
        hits = []
        with self.lock:
            for f in self.faults:
                if f["kind"] == "task_error" or f.get("remaining") == 0:
                    continue
                if f.get("path_prefix") and not path.startswith(f["path_prefix"]):
                    continue
                if f.get("method") and f["method"].upper() != method:
                    continue
                if f.get("remaining") is not None:
                    f["remaining"] -= 1
                f["hits"] += 1
                hits.append(dict(f))
        return hits

    # --- /cluster/resources -------------------------------------------------------
    def refresh_resources(self):
        """What pvestatd does every few seconds: sample all guests and nodes."""
        with self.lock:
            snap = {}
            node_usage = {n: [0.0, 0] for n in self.nodes}
            for vmid, g in self.guests.items():
                node = self.nodes[g.node]
                if not node.online:
                    continue
                st = g.stats(node.cpus)
                st["name"] = g.name()
                snap[vmid] = st
                node_usage[g.node][0] += st["cpu"] * st["cpus"]
                node_usage[g.node][1] += st["mem"]
            nodes = {}
            for name, node in self.nodes.items():
                if not node.online:
                    continue
                cpu_used, mem_used = node_usage[name]
                nodes[name] = self.node_load(node, cpu_used, mem_used)
            self.snap = snap
            self.snap_nodes = nodes
            self.snap_time = now()
            self.snap_gen += 1

    def resources_loop(self):
        while not self.res_stop.is_set():
            lag = max(0.05, self.resources_lag)
            woke = self.res_wake.wait(lag)
            self.res_wake.clear()
            if self.res_stop.is_set():
                return
            if not woke:
                self.refresh_resources()

    @staticmethod
    def node_load(node, cpu_used, mem_used):
        """A node's load: its own base load plus what its running guests use."""
        return {"cpu": round(min(1.0, node.base_cpu + cpu_used / node.cpus), 4),
                "mem": int(min(node.memory, node.base_mem + mem_used)),
                "uptime": int(now() - node.boot)}

    def node_live(self, name):
        """node_load right now (what /nodes/{node}/status reads from /proc)."""
        node = self.nodes[name]
        cpu_used = mem_used = 0
        for g in self.guests.values():
            if g.node == name and g.status == "running":
                st = g.stats(node.cpus)
                cpu_used += st["cpu"] * st["cpus"]
                mem_used += st["mem"]
        return self.node_load(node, cpu_used, mem_used)

    def node_rootfs(self, name):
        """(used, total) of the node's root file system, which holds 'local'."""
        local = self.nodes[name].storages.get("local")
        if local is None:
            return 9 * GiB, 96 * GiB
        return (min(local.total, local.base_used + sum(f["size"] for f in local.files.values())),
                local.total)

    # --- storages ---------------------------------------------------------------------
    def guest_volumes(self, node):
        """Guest volumes on a node's storages, as list_images finds them:
        {storage: {volid: entry}}, entry as the content list shows it."""
        out = {}
        storages = self.nodes[node].storages
        shared = {sid for sid, st in storages.items() if st.shared}
        for g in self.guests.values():
            if g.node != node and not shared:
                continue
            for key, value in g.conf.items():
                if not isinstance(value, str) or not DISK_KEY_RE.match(key):
                    continue
                volid = value.split(",", 1)[0]
                if volid.startswith(("volume=", "file=")):
                    volid = volid.split("=", 1)[1]
                m = GUEST_VOL_RE.match(volid)
                if not m:
                    continue
                if g.node != node and (m.group(1) not in shared or
                                       self.nodes[g.node].storages.get(m.group(1)) is not
                                       storages[m.group(1)]):
                    continue            # a volume on another node's own storage
                sm = re.search(r"(?:^|,)size=([^,]+)", value)
                owner = int(m.group(3))
                og = self.guests.get(owner)
                out.setdefault(m.group(1), {})[volid] = {
                    "volid": volid, "format": m.group(4) or "raw",
                    "size": (parse_size(sm.group(1)) or 0) if sm else 0,
                    "vmid": owner, "ctime": int((og or g).created),
                    "content": "rootdir" if (og or g).kind == "lxc" else "images"}
        return out

    def storage_status(self, node, sid, vols=None):
        """storage_info's entry for one storage of a node."""
        st = self.nodes[node].storages[sid]
        d = {"type": st.kind, "content": ",".join(sorted(st.content)), "shared": int(st.shared),
             "enabled": int(st.enabled), "active": 0, "total": 0, "used": 0, "avail": 0}
        if st.enabled and st.active:
            if vols is None:
                vols = self.guest_volumes(node)
            used = st.base_used + sum(f["size"] for f in st.files.values()) + \
                sum(v["size"] for v in vols.get(sid, {}).values())
            used = min(used, st.total)
            d.update(active=1, total=st.total, used=used, avail=st.total - used)
        return d

    def has_volume(self, node, volid):
        """Whether a file volume (template, ISO, backup) exists on the node."""
        sid = volid.split(":", 1)[0]
        st = self.nodes[node].storages.get(sid)
        return st is not None and volid in st.files

    def resources(self, rtype):
        key = (self.snap_gen, self.state_gen, rtype)
        cached = self.res_cache.get(rtype)
        if cached and cached[0] == key:
            return cached[1]
        with self.lock:
            key = (self.snap_gen, self.state_gen, rtype)
            out = []
            if rtype in (None, "vm"):
                for vmid in sorted(self.guests):
                    g = self.guests[vmid]
                    e = {"id": "%s/%d" % (g.kind, vmid), "type": g.kind, "vmid": vmid,
                         "node": g.node, "template": int(bool(g.conf.get("template")))}
                    st = self.snap.get(vmid)
                    if st is not None and self.nodes[g.node].online:
                        e.update(name=st["name"], status="running" if st["uptime"] else "stopped",
                                 uptime=st["uptime"], maxcpu=st["cpus"], cpu=st["cpu"],
                                 maxmem=st["maxmem"], mem=st["mem"], maxdisk=st["maxdisk"],
                                 disk=st["disk"], netin=st["netin"], netout=st["netout"],
                                 diskread=st["diskread"], diskwrite=st["diskwrite"])
                    else:
                        e["status"] = "unknown"
                    for prop in ("lock", "tags"):
                        if g.conf.get(prop):
                            e[prop] = g.conf[prop]
                    out.append(e)
            if rtype in (None, "node"):
                for name, node in self.nodes.items():
                    e = {"id": "node/%s" % name, "type": "node", "node": name,
                         "status": "online" if node.online else "offline"}
                    st = self.snap_nodes.get(name)
                    if st is not None and node.online:
                        disk, maxdisk = self.node_rootfs(name)
                        e.update(cpu=st["cpu"], maxcpu=node.cpus, mem=st["mem"],
                                 maxmem=node.memory, disk=disk, maxdisk=maxdisk,
                                 uptime=st["uptime"], level="", **{"cgroup-mode": 2})
                    out.append(e)
            if rtype in (None, "storage"):
                for name, node in self.nodes.items():
                    vols = self.guest_volumes(name) if node.online else {}
                    for sid, st in node.storages.items():
                        if not st.enabled:
                            continue            # storage_check_enabled skips it
                        e = {"id": "storage/%s/%s" % (name, sid), "type": "storage",
                             "storage": sid, "node": name, "plugintype": st.kind,
                             "content": ",".join(sorted(st.content)),
                             "shared": int(st.shared), "status": "unknown"}
                        if node.online and st.active:
                            info = self.storage_status(name, sid, vols)
                            e.update(status="available", disk=info["used"],
                                     maxdisk=info["total"])
                        out.append(e)
            body = json.dumps({"data": out}, separators=(",", ":")).encode()
            self.res_cache[rtype] = (key, RawJson(body))
            return self.res_cache[rtype][1]

    # --- auth ---------------------------------------------------------------------
    def _sign(self, text):
        return base64.b64encode(hmac.new(self.secret, text.encode(), hashlib.sha256)
                                .digest()).decode().rstrip("=")

    def make_ticket(self, user):
        plain = "PVE:%s:%08X" % (user, int(now()))
        return "%s::%s" % (plain, self._sign(plain))

    def check_ticket(self, ticket):
        """The user of a valid ticket (2 h lifetime), else None."""
        m = re.fullmatch(r"(PVE:([^:\s]+):([0-9A-F]{8}))::(\S+)", ticket or "")
        if not m or not hmac.compare_digest(self._sign(m.group(1)), m.group(4)):
            return None
        age = now() - int(m.group(3), 16)
        if age < -300 or age > 7200:
            return None
        return m.group(2) if m.group(2) in self.users else None

    def make_csrf(self, user):
        ts = "%08X" % int(now())
        return "%s:%s" % (ts, self._sign("%s:%s" % (ts, user)))

    def check_csrf(self, token, user):
        m = re.fullmatch(r"([0-9A-F]{8}):(\S+)", token or "")
        if not m or not hmac.compare_digest(self._sign("%s:%s" % (m.group(1), user)), m.group(2)):
            return False
        age = now() - int(m.group(1), 16)
        return -300 <= age <= 7200

    def check_token(self, value):
        """PVEAPIToken value USER@REALM!TOKENID=SECRET -> the token's full id, else None."""
        tokenid, sep, secret = value.rpartition("=")
        if not sep or not re.fullmatch(r"[^\s!]+@[^\s!]+![A-Za-z][A-Za-z0-9.\-_]+", tokenid):
            return None
        expected = self.tokens.get(tokenid)
        if expected is None or not hmac.compare_digest(expected, secret):
            return None
        return tokenid

    # --- permissions (pve-access-control RPCEnvironment) -----------------------------
    # One ACL at most per token: its privilege set on "/" with propagate, so a token
    # has the same privileges on every path.  root@pam and the tokens nobody
    # restricted have every privilege.
    def privset(self, authid, path="/"):
        """The privileges authid (user@realm or user@realm!token) has on path."""
        if authid == "root@pam":
            return ALL_PRIVS
        user, sep, _ = authid.partition("!")
        if sep:
            if authid not in self.tokens:
                return frozenset()
            return self.token_privs.get(authid, ALL_PRIVS)
        if authid in self.users or any(t.partition("!")[0] == authid for t in self.tokens):
            return ALL_PRIVS            # the owners of the tokens: Administrator on "/"
        return frozenset()

    def permissions(self, authid, path):
        """RPCEnvironment::permissions: {privilege: propagate flag} on path."""
        return {p: 1 for p in sorted(self.privset(authid, path))}

    def effective_permissions(self, authid):
        """RPCEnvironment::get_effective_permissions: every path that has privileges."""
        out = {}
        for path in DEFAULT_ACL_PATHS:
            perms = self.permissions(authid, path)
            if perms:
                out[path] = perms
        return out

    def exec_perm_check(self, authid, check, params, noerr=False):
        """RPCEnvironment::exec_api2_perm_check: ["perm", path, privs, options…],
        ["and", …] (the first failing check's 403) and ["or", …] (a bare
        "Permission check failed"); path templates take the request's parameters
        (template_replace: '-' for a missing one)."""
        if authid == "root@pam":
            return True                 # check_api2_permissions lets root@pam pass
        test = check[0]
        if test == "and":
            for sub in check[1:]:
                self.exec_perm_check(authid, sub, params)
            return True
        if test == "or":
            for sub in check[1:]:
                if self.exec_perm_check(authid, sub, params, noerr=True):
                    return True
            if noerr:
                return False
            raise perm_error()
        _, template, privs, *opts = check
        options = dict(zip(opts[::2], opts[1::2]))
        required = options.get("require_param")
        if required and params.get(required) is None:
            if noerr:
                return False
            raise perm_error()
        path = re.sub(r"\{(\w+)\}", lambda m: str(params.get(m.group(1)) or "-"), template)
        return self.check(authid, normalize_acl_path(path), privs,
                          any_=bool(options.get("any")), noerr=noerr)

    def check(self, authid, path, privs, any_=False, noerr=False):
        """RPCEnvironment::check (all of privs) and check_any: True, or False with
        noerr, else 403 "Permission check failed (<path>, <priv>)"."""
        have = self.privset(authid, path)
        if any_:
            if any(p in have for p in privs):
                return True
            what = "%s, %s" % (path, "|".join(privs))
        else:
            missing = next((p for p in privs if p not in have), None)
            if missing is None:
                return True
            what = "%s, %s" % (path, missing)
        if noerr:
            return False
        raise perm_error(what)

    def vnc_ticket(self, user, path, port):
        """AccessControl::assemble_vnc_ticket: PVEVNC:<time>::<signature>, the signature
        over the user, the ACL path and the port (none of them in the ticket)."""
        plain = "PVEVNC:%08X" % int(now())
        return "%s::%s" % (plain, self._sign("%s:%s:%s:%s" % (plain, user, path, port)))

    def verify_vnc_ticket(self, ticket, user, path, port=None):
        """AccessControl::verify_vnc_ticket: True if the ticket was made for this user,
        path and port less than vnc_ticket_lifetime (40) seconds ago.  A leading
        "<8 characters>:" (the VNC password vncproxy puts in front) is skipped."""
        m = re.fullmatch(r"[^\n]{8}:(PVEVNC:.*)", ticket or "")
        if m:
            ticket = m.group(1)
        m = re.fullmatch(r"(PVEVNC:\S+)::([^:\s]+)", ticket or "")
        if not m:
            return False
        plain, sig = m.groups()
        secret = "%s:%s:%s" % (plain, user, normalize_acl_path(path))
        if port is not None:
            secret += ":%s" % port
        if not hmac.compare_digest(self._sign(secret), sig):
            return False
        t = re.fullmatch(r"PVEVNC:(?:\S+:)?([A-Z0-9]{8})", plain)
        if not t:
            return False
        age = now() - int(t.group(1), 16)
        return -20 < age < self.vnc_ticket_lifetime

    def vncticket_ok(self, authid, ticket, path, privs, port=None):
        """POST /access/vncticket (what termproxy asks): the ticket, then privs on path."""
        normpath = normalize_acl_path(path)
        if not self.verify_vnc_ticket(ticket, authid, normpath, port):
            return False
        privlist = split_list(privs)
        return bool(privlist) and self.check(authid, normpath, privlist, noerr=True)

    def record_password(self, g, user, password=None, hashed=None, source="sim"):
        rec = {"changed_at": now(), "source": source}
        if password is not None:
            rec["sha256"] = hashlib.sha256(password.encode()).hexdigest()
        if hashed is not None:
            rec["hash"] = hashed
        g.passwords[user] = rec
        return rec


# ==========================================================================
# API handlers.  Each gets (ctx, params) with params already checked against
# the route's schema and returns the value of "data".

LXC_HOTPLUG = {"cores", "memory", "swap", "cpulimit", "cpuunits", "description",
               "hostname", "onboot", "protection", "startup", "tags", "hookscript", "lock"}
LXC_CREATE_ONLY = {"node", "vmid", "ostemplate", "password", "storage", "force", "restore",
                   "unique", "pool", "bwlimit", "start", "ignore-unpack-errors",
                   "ssh-public-keys", "ha-managed"}
RRD_STEPS = {"hour": (60, 60), "day": (60, 1440), "week": (1800, 336),
             "month": (1800, 1440), "year": (21600, 1440), "decade": (604800, 520)}
RESERVED_SNAPNAMES = ("current", "vzdump", "pending")


# what extract_node_stats leaves out without Sys.Audit on the node
NODE_STATS = ("uptime", "cpu", "mem", "disk", "maxcpu", "maxmem", "maxdisk")


class Ctx:
    __slots__ = ("user", "kind", "route", "extra")

    def __init__(self, user, route):
        self.user = user
        self.route = route
        self.kind = "qemu" if "/qemu" in route.path else "lxc"
        self.extra = {}


def hotpluggable(key):
    return key in LXC_HOTPLUG or re.fullmatch(r"(net|mp)\d+", key) is not None


# --- qemu-server option groups (check_vm_modify_config_perm, vmconfig_hotplug_pending) ---
QEMU_CPU_OPTIONS = {"cores", "cpu", "runningcpu", "cpulimit", "cpuunits", "numa", "smp",
                    "sockets", "vcpus"}
QEMU_MEMORY_OPTIONS = {"memory", "balloon", "shares", "allow-ksm"}
QEMU_HWTYPE_OPTIONS = {"acpi", "hotplug", "kvm", "machine", "runningmachine", "scsihw",
                       "smbios1", "tablet", "vga", "watchdog", "audio0", "rng0"}
QEMU_GENERAL_OPTIONS = {"agent", "autostart", "bios", "description", "keyboard", "localtime",
                        "migrate_downtime", "migrate_speed", "name", "onboot", "ostype",
                        "protection", "reboot", "startdate", "startup", "tdf", "template"}
QEMU_CLOUDINIT_OPTIONS = {"cicustom", "cipassword", "citype", "ciuser", "ciupgrade",
                          "nameserver", "searchdomain", "sshkeys"}
# applied to a running VM at once ($fast_plug_option plus the cloud-init options)
QEMU_FAST_PLUG = {"description", "hookscript", "lock", "migrate_downtime", "migrate_speed",
                  "name", "onboot", "protection", "shares", "startup", "tags",
                  "vmstatestorage"} | QEMU_CLOUDINIT_OPTIONS
# the update's own parameters, not options of the VM
QEMU_UPDATE_META = {"node", "vmid", "digest", "background_delay", "import-working-storage",
                    "skiplock", "delete", "revert", "force"}
# keys of $confdesc that the API does not offer for writing
QEMU_INTERNAL_OPTIONS = {"vmstate", "runningmachine", "runningcpu", "meta", "parent",
                         "snaptime", "running-nets-host-mtu"}


def split_list(text):
    """PVE::Tools::split_list"""
    return [x for x in re.split(r"[,;\s]+", text or "") if x]


def qemu_option_exists(opt):
    """PVE::QemuServer::option_exists"""
    return lookup(QEMU_OPTIONS, opt) is not None or opt in QEMU_INTERNAL_OPTIONS


def qemu_drive_keys(key):
    """The property-string keys of a drive option."""
    for prefix, keys in (("ide", IDE_KEYS), ("sata", SATA_KEYS), ("scsi", SCSI_KEYS),
                         ("virtio", VIRTIO_KEYS), ("efidisk", QM_EFIDISK0_KEYS),
                         ("tpmstate", QM_TPMSTATE0_KEYS), ("unused", QM_UNUSED_KEYS)):
        if key.startswith(prefix):
            return keys
    raise KeyError(key)


def qemu_hotplug_features(value):
    """parse_hotplug_features; the default is network,disk,usb."""
    if value is None or str(value) == "1":
        return {"network", "disk", "usb"}
    if str(value) == "0":
        return set()
    return set(split_list(str(value)))


def qemu_hotpluggable(opt, value, conf, hotplug, delete=False):
    """Whether vmconfig_hotplug_pending applies opt to a running VM (else it stays
    pending until the next start)."""
    if opt in QEMU_FAST_PLUG or re.fullmatch(r"ipconfig\d+", opt):
        return True
    if re.fullmatch(r"net\d+", opt):
        return "network" in hotplug or (not delete and opt in conf and value is not None and
                                        _net_model_mac(conf[opt]) == _net_model_mac(value))
    if QEMU_DRIVE_RE.match(opt):
        if opt in ("efidisk0", "tpmstate0"):
            return False
        if value is not None and is_cloudinit(value):
            return True
        if "disk" not in hotplug:
            return False
        return not re.match(r"(ide|sata)\d", opt) or (not delete and opt in conf)
    if opt in ("cpuunits", "cpulimit", "balloon"):
        return True
    if opt == "memory":
        return "memory" in hotplug
    if opt == "vcpus":
        return "cpu" in hotplug
    return False


def _net_model_mac(value):
    try:
        net = parse_property_string(QM_NET_KEYS, value)
    except FormatError:
        return None
    return net.get("model"), net.get("macaddr")


def random_mac():
    """random_ether_addr with the datacenter's default prefix BC:24:11."""
    b = secrets.token_bytes(3)
    return "BC:24:11:%02X:%02X:%02X" % (b[0], b[1], b[2])


def crypt_sha256(password):
    """What PVE::Tools::encrypt_pw stores for cipassword: a $5$ (SHA-256) crypt string.
    The simulator's digest is not crypt(3)'s, only its shape."""
    salt = base64.b64encode(secrets.token_bytes(6)).decode().replace("+", "X")
    digest = base64.b64encode(hashlib.sha256((salt + password).encode()).digest())
    return "$5$%s$%s" % (salt, digest.decode().rstrip("=").replace("+", ".")[:43])


class Api:
    def __init__(self, sim):
        self.sim = sim

    # --- version, auth, cluster ---------------------------------------------
    def version(self, ctx, p):
        return dict(PVE_VERSION)

    def get_ticket(self, ctx, p):
        return None

    def create_ticket(self, ctx, p):
        sim = self.sim
        username = p["username"]
        if "@" not in username and p.get("realm"):
            username = "%s@%s" % (username, p["realm"])
        password = p["password"]
        ok = username in sim.users and (
            hmac.compare_digest(sim.users[username], password) or
            sim.check_ticket(password) == username)
        if not ok:
            time.sleep(sim.auth_fail_delay)
            raise ApiError(401, "authentication failure", close=True)
        return {"username": username, "ticket": sim.make_ticket(username),
                "CSRFPreventionToken": sim.make_csrf(username),
                "cap": {"vms": {"VM.PowerMgmt": 1, "VM.Console": 1, "VM.Allocate": 1,
                                "VM.Audit": 1, "VM.Config.Disk": 1, "VM.Snapshot": 1},
                        "nodes": {"Sys.Audit": 1}}}

    def access_permissions(self, ctx, p):
        """GET /access/permissions (API2/AccessControl.pm): one's own permissions (or an
        owned token's); anyone else's needs Sys.Audit on /access."""
        sim = self.sim
        authid = ctx.user
        userid = p.get("userid", authid)
        owner, sep, _ = userid.partition("!")
        if userid != authid and not (sep and owner == authid):
            sim.check(authid, "/access", ["Sys.Audit"])
        if p.get("path"):
            return {p["path"]: sim.permissions(userid, p["path"])}
        return sim.effective_permissions(userid)

    def nextid(self, ctx, p):
        with self.sim.lock:
            if "vmid" in p:
                if p["vmid"] in self.sim.guests:
                    param_error({"vmid": "VM %d already exists" % p["vmid"]})
                return str(p["vmid"])
            vmid = 100
            while vmid in self.sim.guests:
                vmid += 1
            return str(vmid)

    def resources(self, ctx, p):
        """Everything the caller may see (API2/Cluster.pm): guests with VM.Audit on
        /vms/<vmid>, storages with Datastore.Audit on /storage/<storage>; a node
        without Sys.Audit on /nodes/<node> is listed without its usage."""
        sim = self.sim
        if p.get("type") == "sdn":
            return []
        raw = sim.resources(p.get("type"))
        if sim.privset(ctx.user) == ALL_PRIVS:
            return raw                  # the cached answer
        out = []
        for e in json.loads(raw.body)["data"]:
            if e["type"] in ("lxc", "qemu"):
                if not sim.check(ctx.user, "/vms/%d" % e["vmid"], ["VM.Audit"], noerr=True):
                    continue
            elif e["type"] == "storage":
                if not sim.check(ctx.user, "/storage/%s" % e["storage"], ["Datastore.Audit"],
                                 noerr=True):
                    continue
            elif e["type"] == "node":
                if not sim.check(ctx.user, "/nodes/%s" % e["node"], ["Sys.Audit"], noerr=True):
                    for key in NODE_STATS:
                        e.pop(key, None)
            out.append(e)
        return out

    def cluster_tasks(self, ctx, p):
        """All tasks with Sys.Audit on "/", else those whose user (the token's owner for
        a token's task) is the caller: a token without Sys.Audit sees none, as in
        API2/Cluster.pm."""
        every = self.sim.check(ctx.user, "/", ["Sys.Audit"], noerr=True)
        with self.sim.lock:
            tasks = sorted(self.sim.tasks.values(), key=lambda t: -t.starttime)[:100]
            out = [t.list_entry() for t in tasks]
        return [e for e in out if every or e["user"] == ctx.user]

    def nodes(self, ctx, p):
        out = []
        with self.sim.lock:
            for name, node in self.sim.nodes.items():
                e = {"node": name, "id": "node/%s" % name, "type": "node",
                     "status": "online" if node.online else "offline"}
                st = self.sim.snap_nodes.get(name)
                if node.online and st:
                    disk, maxdisk = self.sim.node_rootfs(name)
                    e.update(cpu=st["cpu"], maxcpu=node.cpus, mem=st["mem"], maxmem=node.memory,
                             disk=disk, maxdisk=maxdisk, uptime=int(now() - node.boot),
                             level="", ssl_fingerprint=self.sim.fingerprint)
                    if not self.sim.check(ctx.user, "/nodes/%s" % name, ["Sys.Audit"],
                                          noerr=True):
                        for key in NODE_STATS:
                            e.pop(key)
                out.append(e)
        return out

    def cluster_status(self, ctx, p):
        """pvecm status as the API shows it: the cluster, then every node."""
        sim = self.sim
        with sim.lock:
            nodes = list(sim.nodes.values())
            online = sum(1 for n in nodes if n.online)
            out = [{"type": "cluster", "id": "cluster", "name": sim.cluster_name,
                    "nodes": len(nodes), "quorate": int(online * 2 > len(nodes)),
                    "version": len(nodes)}]
            for n in nodes:
                out.append({"type": "node", "id": "node/%s" % n.name, "name": n.name,
                            "nodeid": n.nodeid, "ip": n.ip, "online": int(n.online),
                            "local": int(n.index == 0), "level": ""})
        return out

    def node_status(self, ctx, p):
        node = self.sim.nodes[p["node"]]
        with self.sim.lock:
            st = self.sim.node_live(p["node"])
            root_used, root_total = self.sim.node_rootfs(p["node"])
        return {
            "boot-info": {"mode": "efi", "secureboot": 0},
            "cpu": st["cpu"], "wait": 0.0012, "idle": 0,
            "cpuinfo": {"cores": node.cpus // 2, "cpus": node.cpus, "sockets": 1,
                        "model": "AMD EPYC 7302P 16-Core Processor", "mhz": "3000.000",
                        "hvm": "1", "user_hz": 100, "flags": "fpu vme de pse tsc msr pae"},
            "current-kernel": {"machine": "x86_64", "release": "6.17.2-1-pve",
                               "sysname": "Linux",
                               "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z)"},
            "kversion": "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1",
            "loadavg": ["0.42", "0.37", "0.31"],
            "memory": {"total": node.memory, "used": st["mem"], "free": node.memory - st["mem"],
                       "available": node.memory - st["mem"]},
            "swap": {"total": 8 * GiB, "used": 0, "free": 8 * GiB},
            "ksm": {"shared": 0},
            "pveversion": PVEVERSION_STRING,
            "rootfs": {"total": root_total, "used": root_used, "free": root_total - root_used,
                       "avail": max(0, root_total - root_used - root_total // 20)},
            "uptime": int(now() - node.boot),
        }

    def node_rrddata(self, ctx, p):
        node = self.sim.nodes[p["node"]]
        step, count = RRD_STEPS[p["timeframe"]]
        peak = 1.25 if p.get("cf") == "MAX" else 1.0
        end = int(now()) // step * step
        out = []
        for i in range(count):
            t = end - (count - 1 - i) * step
            w = 1 + 0.3 * math.sin(2 * math.pi * t / 86400.0)
            out.append({"time": t, "cpu": min(1.0, 0.05 * w * peak), "iowait": 0.001 * w,
                        "loadavg": 0.4 * w * peak, "maxcpu": float(node.cpus),
                        "memtotal": float(node.memory), "memused": float(8 * GiB * w),
                        "swaptotal": float(8 * GiB), "swapused": 0.0,
                        "roottotal": float(96 * GiB), "rootused": float(9 * GiB),
                        "netin": 120000.0 * w * peak, "netout": 80000.0 * w * peak})
        return out

    # --- storage (pve-storage API2/Storage/Status.pm, Content.pm) -------------
    def storage_index(self, ctx, p):
        sim = self.sim
        node = p["node"]
        target = p.get("target")
        if target in (node, "localhost"):
            target = None

        wanted = [x for x in re.split(r"[\s,;]+", p.get("content", "")) if x]
        with sim.lock:
            vols = sim.guest_volumes(node)
            info = {}
            for sid, st in sim.nodes[node].storages.items():
                if "content" in p and (not st.enabled or
                                       not any(c in st.content for c in wanted)):
                    continue
                info[sid] = sim.storage_status(node, sid, vols)
            if p.get("storage") and p["storage"] not in info:
                param_error({"storage": "No such storage."})
            out = []
            for sid, data in sorted(info.items()):
                st = sim.nodes[node].storages[sid]
                if not sim.check(ctx.user, "/storage/%s" % sid,
                                 ["Datastore.Audit", "Datastore.AllocateSpace"], any_=True,
                                 noerr=True):
                    continue
                if p.get("storage") and p["storage"] != sid:
                    continue
                if p.get("enabled") and not st.enabled:
                    continue
                if target and not (st.shared and target in sim.nodes and
                                   sid in sim.nodes[target].storages):
                    continue                # only shared storages the target has too
                if data["total"]:
                    data["used_fraction"] = data["used"] / data["total"]
                if p.get("format"):
                    supported, default = STORAGE_FORMATS.get(st.kind, (["raw"], "raw"))
                    data["formats"] = {"default": default, "supported": list(supported)}
                data["storage"] = sid
                out.append(data)
        return out

    def storage_diridx(self, ctx, p):
        return [{"subdir": s} for s in ("content", "download-url", "file-restore",
                                        "import-metadata", "prunebackups", "rrd", "rrddata",
                                        "status", "upload")]

    def storage_read_status(self, ctx, p):
        with self.sim.lock:
            if p["storage"] not in self.sim.nodes[p["node"]].storages:
                param_error({"storage": "No such storage."})
            return self.sim.storage_status(p["node"], p["storage"])

    def storage_content(self, ctx, p):
        """PVE::Storage::volume_list: the volumes of the content types the storage has."""
        sim = self.sim
        node, sid = p["node"], p["storage"]
        with sim.lock:
            st = sim.storage(node, sid)         # storage 'x' does not exist
            if not st.enabled:
                die("storage '%s' is disabled" % sid)
            if not st.active:
                die("storage '%s' is not online" % sid)
            ctypes = [p["content"]] if "content" in p else list(CONTENT_ORDER)
            ctypes = [c for c in ctypes if c in st.content]
            vols = sim.guest_volumes(node).get(sid, {}) \
                if ("images" in ctypes or "rootdir" in ctypes) else {}
            out = []
            for ctype in ctypes:
                if ctype in ("images", "rootdir"):
                    items = [dict(v) for v in vols.values() if v["content"] == ctype]
                else:
                    if "vmid" in p and ctype in ("vztmpl", "iso", "snippets"):
                        continue
                    items = [dict(f, volid=volid) for volid, f in st.files.items()
                             if f["content"] == ctype and
                             ("vmid" not in p or f.get("vmid") == p["vmid"])]
                if "vmid" in p:
                    items = [v for v in items if v.get("vmid") == p["vmid"]]
                out += sorted((v for v in items if self._may_see_volume(ctx.user, sid, v)),
                              key=lambda v: v["volid"])
        return out

    def _may_see_volume(self, user, sid, vol):
        """PVE::Storage::check_volume_access without a vmid, as the content list calls it:
        what it refuses is left out."""
        sim = self.sim
        storage = "/storage/%s" % sid
        if sim.check(user, storage, ["Datastore.Allocate"], noerr=True):
            return True
        ctype, owner = vol["content"], vol.get("vmid")
        if ctype in ("iso", "vztmpl", "import"):
            return True                 # Audit or AllocateSpace: the route checked it
        if ctype == "backup" and owner:
            return sim.check(user, storage, ["Datastore.AllocateSpace"], noerr=True) and \
                sim.check(user, "/vms/%d" % owner, ["VM.Backup"], noerr=True)
        if ctype in ("images", "rootdir") and owner:
            return sim.check(user, storage, ["Datastore.Audit"], noerr=True) and \
                sim.check(user, "/vms/%d" % owner, ["VM.Config.Disk"], noerr=True)
        return False                    # "missing privileges to access <volid>"

    # --- tasks ------------------------------------------------------------
    def node_tasks(self, ctx, p):
        source = p.get("source", "archive")
        auditor = self.sim.check(ctx.user, "/nodes/%s" % p["node"], ["Sys.Audit"], noerr=True)
        with self.sim.lock:
            tasks = [t for t in self.sim.tasks.values() if t.node == p["node"] and
                     (auditor or self._task_owner(t, ctx.user))]
        out = []
        statusfilter = set(x.lower() for x in re.split(r"[,;\s]+", p.get("statusfilter", "")) if x)
        for t in sorted(tasks, key=lambda t: (-t.starttime, t.upid)):
            if source == "archive" and t.status == "running":
                continue
            if source == "active" and t.status != "running":
                continue
            if "vmid" in p and t.vmid != p["vmid"]:
                continue
            if p.get("typefilter") and t.type != p["typefilter"]:
                continue
            if p.get("userfilter") and p["userfilter"] not in t.user:
                continue
            if "since" in p and t.starttime < p["since"]:
                continue
            if "until" in p and t.starttime > p["until"]:
                continue
            failed = t.status == "stopped" and t.exitstatus != "OK" and \
                not t.exitstatus.startswith("WARNINGS")
            if p.get("errors") and not failed:
                continue
            if statusfilter:
                kind = ("active" if t.status == "running" else "ok" if t.exitstatus == "OK"
                        else "warning" if t.exitstatus.startswith("WARNINGS") else "error")
                if kind not in statusfilter:
                    continue
            out.append(t.list_entry())
        ctx.extra["total"] = len(out)
        start = p.get("start", 0)
        limit = p.get("limit", 50)
        return out[start:start + limit]

    @staticmethod
    def _task_owner(task, user):
        """check_task_user (API2/Tasks.pm): a token sees its own tasks, a user also
        those of its tokens."""
        return user == task.user or user == task.user.partition("!")[0]

    def _task_access(self, ctx, task, priv):
        if not self._task_owner(task, ctx.user):
            self.sim.check(ctx.user, "/nodes/%s" % task.node, [priv])

    def task_index(self, ctx, p):
        with self.sim.lock:
            self.sim.find_task(p["node"], p["upid"])
        return [{"name": "log"}, {"name": "status"}]

    def task_stop(self, ctx, p):
        with self.sim.lock:
            task = self.sim.find_task(p["node"], p["upid"])
        self._task_access(ctx, task, "Sys.Modify")
        task.abort.set()
        return None

    def task_status(self, ctx, p):
        with self.sim.lock:
            task = self.sim.find_task(p["node"], p["upid"])
        self._task_access(ctx, task, "Sys.Audit")
        with self.sim.lock:
            return task.info()

    def task_log(self, ctx, p):
        with self.sim.lock:
            task = self.sim.find_task(p["node"], p["upid"])
            lines = list(task.lines)
        self._task_access(ctx, task, "Sys.Audit")
        start = p.get("start", 0)
        limit = p.get("limit", 50)
        ctx.extra["total"] = len(lines)
        if not lines:
            return [{"n": 1, "t": "no content"}]
        return [{"n": i + 1, "t": line}
                for i, line in enumerate(lines) if start <= i < start + limit]

    # --- guest listing and status ----------------------------------------------------
    def _vmstatus(self, g, full=False):
        """vmstatus (pve-container LXC.pm, qemu-server QemuServer.pm).  For a VM,
        diskread/diskwrite (query-blockstats), qmpstatus, running-qemu,
        running-machine, balloon and freemem come from QMP: only with full and only
        while it runs; disk is always 0 ("no info available")."""
        node = self.sim.nodes[g.node]
        st = g.stats(node.cpus)
        d = {"vmid": g.vmid, "name": g.name(), "status": st["status"],
             "uptime": st["uptime"], "cpus": st["cpus"], "cpu": st["cpu"],
             "mem": st["mem"], "maxmem": st["maxmem"], "disk": st["disk"],
             "maxdisk": st["maxdisk"], "netin": st["netin"], "netout": st["netout"],
             "diskread": st["diskread"], "diskwrite": st["diskwrite"]}
        if g.kind == "lxc":
            d["type"] = "lxc"
            d["maxswap"] = g.maxswap()
            d["swap"] = 0
        else:
            d["memhost"] = st["mem"]
            running = g.status == "running"
            if not (full and running):
                del d["diskread"], d["diskwrite"]
            if g.conf.get("balloon"):
                d["balloon_min"] = int(g.conf["balloon"]) * MiB
                d["shares"] = int(g.conf.get("shares", 1000))
            if any(re.fullmatch(r"serial\d+", k) for k in g.conf):
                d["serial"] = 1
            if full:
                d["qmpstatus"] = self._qmpstatus(g)
            if full and running:
                d["running-qemu"] = QEMU_VERSION
                d["running-machine"] = QEMU_MACHINE
                d["proxmox-support"] = {}
                if str(g.conf.get("balloon", "")) != "0":
                    d["balloon"] = st["maxmem"]
                    d["freemem"] = st["maxmem"] - st["mem"]
                nets = sorted(int(k[3:]) for k in g.conf if re.fullmatch(r"net\d+", k))
                d["nics"] = {"tap%di%d" % (g.vmid, i): {
                    "netin": st["netin"] // max(1, len(nets)),
                    "netout": st["netout"] // max(1, len(nets))} for i in nets}
        if g.status == "running":
            d["pid"] = g.pid
            w = unit_float("pressure", g.vmid)
            d.update(pressurecpusome=round(0.5 * w, 2), pressurecpufull=round(0.2 * w, 2),
                     pressureiosome=round(0.3 * w, 2), pressureiofull=round(0.1 * w, 2),
                     pressurememorysome=0.0, pressurememoryfull=0.0)
            if g.kind == "lxc":
                del d["pressurecpufull"]
        for prop in ("lock", "tags"):
            if g.conf.get(prop):
                d[prop] = g.conf[prop]
        if g.conf.get("template"):
            d["template"] = 1
        return d

    def lxc_list(self, ctx, p):
        with self.sim.lock:
            return [self._vmstatus(g) for vmid, g in sorted(self.sim.guests.items())
                    if g.node == p["node"] and g.kind == "lxc" and
                    self.sim.check(ctx.user, "/vms/%d" % vmid, ["VM.Audit"], noerr=True)]

    def qemu_list(self, ctx, p):
        with self.sim.lock:
            out = []
            for vmid, g in sorted(self.sim.guests.items()):
                if g.node == p["node"] and g.kind == "qemu" and \
                        self.sim.check(ctx.user, "/vms/%d" % vmid, ["VM.Audit"], noerr=True):
                    out.append(self._vmstatus(g, full=bool(p.get("full"))))
            return out

    def lxc_index(self, ctx, p):
        with self.sim.lock:
            self.sim.guest(p["node"], p["vmid"], "lxc")
        return [{"subdir": s} for s in (
            "config", "pending", "status", "vncproxy", "termproxy", "vncwebsocket",
            "spiceproxy", "migrate", "clone", "rrd", "rrddata", "firewall", "snapshot",
            "resize", "interfaces")]

    def qemu_index(self, ctx, p):
        with self.sim.lock:
            self.sim.guest(p["node"], p["vmid"], "qemu")
        return [{"subdir": s} for s in (
            "config", "pending", "cloudinit", "status", "unlink", "vncproxy", "termproxy",
            "migrate", "resize", "move", "rrd", "rrddata", "monitor", "agent", "snapshot",
            "spiceproxy", "sendkey", "firewall", "mtunnel", "remote_migrate")]

    def lxc_status_index(self, ctx, p):
        with self.sim.lock:
            self.sim.guest(p["node"], p["vmid"], "lxc")
        return [{"subdir": s} for s in ("current", "start", "stop", "shutdown", "reboot",
                                        "suspend", "resume")]

    def lxc_status(self, ctx, p):
        with self.sim.lock:
            g = self.sim.guest(p["node"], p["vmid"], "lxc")
            d = self._vmstatus(g)
        d["ha"] = {"managed": 0}
        return d

    def _qmpstatus(self, g):
        if g.status != "running":
            return "stopped"
        return "paused" if g.paused else "running"

    def qemu_status(self, ctx, p):
        with self.sim.lock:
            g = self.sim.guest(p["node"], p["vmid"], "qemu")
            d = self._vmstatus(g, full=True)
            d["ha"] = {"managed": 0}
            if g.conf.get("vga"):
                # spice for virtio* and qxl* display types; the clipboard setting (left
                # out when unset, where Proxmox sends null)
                vga = parse_property_string(QM_VGA_KEYS, str(g.conf["vga"]))
                if str(vga.get("type", "")).startswith(("virtio", "qxl")):
                    d["spice"] = 1
                if vga.get("clipboard"):
                    d["clipboard"] = vga["clipboard"]
            if self._agent_enabled(g):
                d["agent"] = 1
            return d

    def lxc_interfaces(self, ctx, p):
        with self.sim.lock:
            g = self.sim.guest(p["node"], p["vmid"], "lxc")
            if g.status != "running":
                die("CT %d not running" % g.vmid)
            out = [self._iface("lo", "00:00:00:00:00:00", "127.0.0.1/8", "::1/128")]
            for key in sorted((k for k in g.conf if re.fullmatch(r"net\d+", k)),
                              key=lambda k: int(k[3:])):
                net = parse_property_string(NET_KEYS, g.conf[key])
                mac = net.get("hwaddr", guest_mac(g.vmid, int(key[3:])))
                ip = net.get("ip")
                inet = None
                if ip == "dhcp":
                    inet = guest_ipv4(g.vmid) + "/16"
                elif ip and ip != "manual":
                    inet = ip
                out.append(self._iface(net["name"], mac, inet, link_local(mac) + "/64"))
            return out

    @staticmethod
    def _iface(name, mac, inet, inet6):
        d = {"name": name, "hwaddr": mac, "hardware-address": mac, "ip-addresses": []}
        for addr, family in ((inet, "inet"), (inet6, "inet6")):
            if addr:
                d[family] = addr
                a, _, prefix = addr.partition("/")
                d["ip-addresses"].append({"ip-address": a, "ip-address-type": family,
                                          "prefix": int(prefix)})
        return d

    # --- create / destroy -------------------------------------------------------
    def lxc_create(self, ctx, p):
        sim = self.sim
        node, vmid = p["node"], p["vmid"]
        restore = p.get("restore")
        user = ctx.user
        if not restore and not p.get("unprivileged", 1):
            sim.check(user, "/", ["Sys.Modify"])          # a privileged container
        if p.get("ha-managed"):
            sim.check(user, "/", ["Sys.Console"])
        with sim.lock:
            existing = sim.guests.get(vmid)
            if existing is not None:
                if not (restore and p.get("force") and existing.node == node and
                        existing.kind == "lxc"):
                    die("%s %d already exists on node '%s'" % (existing.label(), vmid,
                                                               existing.node))
                if existing.conf.get("protection"):
                    die("unable to restore CT %d - protection mode enabled" % vmid)
                if existing.status == "running":
                    die("can't overwrite running container")
            keys = p.get("ssh-public-keys")
            if keys is not None:
                for line in keys.splitlines():
                    if line.strip() and not re.match(
                            r"(ssh-|ecdsa-|sk-ssh-|sk-ecdsa-)\S+ [A-Za-z0-9+/=]+( .*)?$",
                            line.strip()):
                        die("SSH public key validation error")
            if not (sim.check(user, "/vms/%d" % vmid, ["VM.Allocate"], noerr=True) or
                    restore and p.get("force") and existing is not None and
                    sim.check(user, "/vms/%d" % vmid, ["VM.Backup"], noerr=True)):
                raise perm_error()
            self._ct_config_perm(user, vmid, {}, {
                k: v for k, v in p.items() if k not in LXC_CREATE_ONLY and k != "unprivileged"})
            ostemplate = p["ostemplate"]
            if ostemplate == "-":
                die("pipe requires cli environment")
            m = re.fullmatch(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)", ostemplate, re.I)
            if not m and not ostemplate.startswith("/"):
                die("unable to parse volume ID '%s'" % ostemplate)
            if m:
                tst = sim.storage(node, m.group(1))
                if not restore:
                    # PVE::Storage::check_volume_access(..., 'vztmpl'): parse_volname
                    # and the content type; whether the file exists is seen in the task
                    vtype = self._volume_type(tst, m.group(2))
                    if vtype != "vztmpl":
                        die("unable to use volume %s - content type needs to be 'vztmpl'"
                            % ostemplate)
                self._volume_access(user, vmid, ostemplate)
            storage = p.get("storage", "local")
            disks = {k: v for k, v in p.items() if k == "rootfs" or re.fullmatch(r"mp\d+", k)}
            if disks and "rootfs" not in disks:
                die("mount points configured, but 'rootfs' not set - aborting")
            for key, value in (disks or {"rootfs": "%s:4" % storage}).items():
                if re.fullmatch(r"\d+(\.\d+)?", value):
                    value = "%s:%s" % (storage, value)
                volume = parse_property_string(ROOTFS_KEYS if key == "rootfs" else MP_KEYS,
                                               value)["volume"]
                if volume.startswith("/"):
                    continue                    # bind mount (root only)
                sid = volume.split(":", 1)[0]
                st = sim.storage(node, sid)
                if "rootdir" not in st.content:
                    param_error({"storage": "storage '%s' does not support container "
                                            "directories" % sid})
                sim.check(user, "/storage/%s" % sid, ["Datastore.AllocateSpace"])
            options = {k: v for k, v in p.items() if k not in LXC_CREATE_ONLY}
            if existing is not None:
                del sim.guests[vmid]
            g = sim.make_lxc(vmid, node, options, ostemplate, storage)
            g.conf["lock"] = "create"
            g.created = now()
            if "password" in p:
                # pve-container's set_user_password takes a crypt() string as it is
                # (Setup/Base.pm: $1$, $2[axy]$, $5$, $6$ with a salt of 1-16 characters)
                if re.match(r"^\$(?:1|2[axy]?|5|6)\$[a-zA-Z0-9./]{1,16}\$[a-zA-Z0-9./]+$",
                            p["password"]):
                    sim.record_password(g, "root", hashed=p["password"], source="create")
                else:
                    sim.record_password(g, "root", p["password"], source="create")
            g.ssh_keys = keys
            sim.guests[vmid] = g
            sim.changed()

        def worker(task):
            # the worker holds the config file lock for the whole create
            # (lock_config($vmid, $code) in pve-container's create_vm): a PUT config or a
            # start meanwhile waits for it (up to lock_timeout), then finds no lock
            with sim.locked(g):
                try:
                    self._create_log(task, g, ostemplate, restore)
                    task.work()
                    task.injected_failure()
                except TaskError as e:
                    with sim.lock:
                        if sim.guests.get(vmid) is g:
                            del sim.guests[vmid]
                            sim.changed()
                    raise TaskError("unable to create CT %d - %s" % (vmid, e))
                with sim.lock:
                    g.conf.pop("lock", None)
                    sim.changed()
            if p.get("start"):
                self._start_task(ctx.user, g, skiplock=False)

        return sim.spawn(node, "vzrestore" if restore else "vzcreate", vmid, ctx.user,
                         worker).upid

    # --- permission rules of pve-container and pve-storage ---------------------------
    def _ct_config_perm(self, user, vmid, old, new, delete=()):
        """PVE::LXC::check_ct_modify_config_perm, option by option (sorted; Perl walks a
        hash).  The rules only root@pam passes (dev[n], hookscript, bind mounts,
        feature flags other than nesting) are not simulated."""
        sim = self.sim
        if user == "root@pam":
            return
        vms = "/vms/%d" % vmid

        def check(opt, deleting):
            if opt in ("cores", "cpuunits", "cpulimit"):
                sim.check(user, vms, ["VM.Config.CPU"])
            elif opt == "rootfs" or re.fullmatch(r"mp\d+", opt):
                sim.check(user, vms, ["VM.Config.Disk"])
                if deleting:
                    return
                volume = parse_property_string(ROOTFS_KEYS if opt == "rootfs" else MP_KEYS,
                                               new[opt])["volume"]
                m = re.fullmatch(r"([^:\s]+):(\d+(\.\d+)?)", volume)
                if m:
                    sim.check(user, "/storage/%s" % m.group(1), ["Datastore.AllocateSpace"])
                elif ":" in volume:
                    self._volume_access(user, vmid, volume)
            elif opt in ("memory", "swap"):
                sim.check(user, vms, ["VM.Config.Memory"])
            elif re.fullmatch(r"net\d+", opt):
                sim.check(user, vms, ["VM.Config.Network"])
                for raw in (old.get(opt), None if deleting else new.get(opt)):
                    if raw:
                        self._bridge_access(user, raw)
            elif opt in ("nameserver", "searchdomain", "hostname"):
                sim.check(user, vms, ["VM.Config.Network"])
            elif opt == "features":
                sim.check(user, vms, ["VM.Allocate"])       # nesting
            elif opt == "hookscript" or re.fullmatch(r"dev\d+", opt):
                pass                                        # root@pam only
            else:
                sim.check(user, vms, ["VM.Config.Options"])  # tags too
        for opt in sorted(new):
            check(opt, False)
        for opt in delete:
            check(opt, True)

    def _bridge_access(self, user, raw, keys=NET_KEYS):
        """check_vnet_access: SDN.Use on the bridge of the local zone (or on its VLANs)."""
        try:
            net = parse_property_string(keys, raw)
        except FormatError:
            return
        bridge = net.get("bridge")
        if not bridge:
            return
        path = "/sdn/zones/localnetwork/%s" % bridge
        tags = [str(net["tag"])] if net.get("tag") else []
        tags += [t for t in str(net.get("trunks", "")).split(";") if t]
        for tag in tags:
            self.sim.check(user, "%s/%s" % (path, tag), ["SDN.Use"])
        if not tags:
            self.sim.check(user, path, ["SDN.Use"])

    def _volume_access(self, user, vmid, volid):
        """PVE::Storage::check_volume_access for a volume a guest is to use."""
        sim = self.sim
        sid, _, volname = volid.partition(":")
        storage = "/storage/%s" % sid
        if sim.check(user, storage, ["Datastore.Allocate"], noerr=True):
            return
        m = re.search(r"(?:^|/)(?:vm|base|subvol|basevol)-(\d+)-", volname) or \
            re.search(r"vzdump-(?:lxc|qemu|openvz)-(\d+)-", volname)
        owner = int(m.group(1)) if m else None
        if volname.startswith(("vztmpl/", "iso/", "import/")):
            sim.check(user, storage, ["Datastore.AllocateSpace", "Datastore.Audit"], any_=True)
        elif owner is not None and owner == vmid:
            return
        elif volname.startswith("dump/") and owner is not None:
            sim.check(user, storage, ["Datastore.AllocateSpace"])
            sim.check(user, "/vms/%d" % owner, ["VM.Backup"])
        elif owner is not None:
            sim.check(user, storage, ["Datastore.Audit"])
            sim.check(user, "/vms/%d" % owner, ["VM.Config.Disk"])
        else:
            die("missing privileges to access %s" % volid)

    @staticmethod
    def _volume_type(st, volname):
        """The plugins' parse_volname: the content type of a volume name."""
        if st.kind == "dir":
            for prefix, vtype in (("vztmpl/", "vztmpl"), ("iso/", "iso"), ("dump/", "backup"),
                                  ("snippets/", "snippets"), ("import/", "import")):
                if volname.startswith(prefix):
                    return vtype
            if re.match(r"\d+/", volname):
                return "images"
            die("unable to parse directory volume name '%s'" % volname)
        if re.fullmatch(r"(vm|base)-\d+-\S+", volname):
            return "images"
        die("unable to parse lvm volume name '%s'" % volname)

    def _create_log(self, task, g, ostemplate, restore=False):
        root = parse_property_string(ROOTFS_KEYS, g.conf["rootfs"])
        lv = root["volume"].split(":", 1)[1] if root["volume"].startswith("local-lvm:") \
            else None
        if lv:
            task.log('  Logical volume "%s" created.' % lv)
        blocks = (parse_size(root.get("size", "4G")) or 4 * GiB) // 4096
        task.log("Creating filesystem with %d 4k blocks and %d inodes" % (blocks, blocks // 4))
        # the worker looks for the archive after making the disks
        # (PVE::Storage::abs_filesystem_path in pve-container's create_vm)
        if not restore and ":" in ostemplate and \
                not self.sim.has_volume(g.node, ostemplate):
            task.work(0.1 * DURATIONS["vzcreate"])
            if lv:
                task.log('  Logical volume "%s" successfully removed.' % lv)
            raise TaskError("can't find file '%s'" % ostemplate)
        task.log("extracting archive '/var/lib/vz/template/cache/%s'"
                 % ostemplate.rsplit("/", 1)[-1])
        task.log("Total bytes read: 521902080 (498MiB, 187MiB/s)")
        task.log("Detected container architecture: %s" % g.conf.get("arch", "amd64"))
        for kind in ("rsa", "ecdsa", "ed25519"):
            task.log("Creating SSH host key 'ssh_host_%s_key' - this may take some time ..." % kind)
            task.log("done: SHA256:%s root@%s" % (
                base64.b64encode(hashlib.sha256(("%s%d" % (kind, g.vmid)).encode()).digest())
                .decode().rstrip("="), g.conf.get("hostname")))

    def lxc_destroy(self, ctx, p):
        sim = self.sim
        with sim.lock:
            g = sim.guest(p["node"], p["vmid"], "lxc")
            msg = g.lock_error()
            if msg:
                die(msg)
            if g.conf.get("protection"):
                die("can't remove CT %d - protection mode enabled" % g.vmid)
            if g.status == "running" and not p.get("force"):
                die("unable to destroy CT %d - container is running" % g.vmid)
        return sim.spawn(g.node, "vzdestroy", g.vmid, ctx.user,
                         lambda task: self._destroy(task, g, p)).upid

    def qemu_destroy(self, ctx, p):
        sim = self.sim
        with sim.lock:
            # the early checks of destroy_vm (the API): no lock check, destroy_vm in the
            # worker checks it
            g = sim.guest(p["node"], p["vmid"], "qemu")
            if g.conf.get("protection"):
                die("can't remove VM %d - protection mode enabled" % g.vmid)
            if g.status == "running":
                die("VM %d is running - destroy failed" % g.vmid)
        return sim.spawn(g.node, "qmdestroy", g.vmid, ctx.user,
                         lambda task: self._destroy(task, g, p)).upid

    def _destroy(self, task, g, p):
        sim = self.sim
        if not g.flock.acquire(timeout=sim.lock_timeout):
            raise TaskError("can't lock file '%s' - got timeout" % lock_path(g))
        try:
            with sim.lock:
                if sim.guests.get(g.vmid) is not g:
                    raise TaskError("Configuration file '%s' does not exist" % g.config_path())
                if g.kind == "qemu":
                    self._qemu_destroy_checks(g, p)
                if g.status == "running":
                    task.log("stopping %s %d" % (g.label(), g.vmid))
                    sim.set_stopped(g)
            key = g.root_key()
            if key:
                vol = str(g.conf[key]).split(",")[0]
                task.log('  Logical volume "%s" successfully removed.' % vol.split(":", 1)[-1])
            if p.get("purge"):
                task.log("purging %s %d from related configurations.." % (g.label(), g.vmid))
            task.work()
            task.injected_failure()
            with sim.lock:
                if sim.guests.get(g.vmid) is g:
                    del sim.guests[g.vmid]
                sim.changed()
        finally:
            g.flock.release()

    def _qemu_destroy_checks(self, g, p):
        """In the qmdestroy worker: the early checks again, then destroy_vm's: the lock
        (unless skiplock), and for a template the base volumes linked clones use."""
        if g.conf.get("protection"):
            raise TaskError("can't remove VM %d - protection mode enabled" % g.vmid)
        if g.status == "running":
            raise TaskError("VM %d is running - destroy failed" % g.vmid)
        msg = None if p.get("skiplock") or g.lock() == "suspended" else g.lock_error()
        if msg:
            raise TaskError(msg)
        if not g.conf.get("template"):
            return
        for key in sorted(g.conf):
            value = str(g.conf[key])
            if not (QEMU_DRIVE_RE.match(key) or key.startswith("unused")) or is_cdrom(value):
                continue
            volid = value.split(",")[0]
            for other in self.sim.guests.values():
                if other is not g and any(str(v).split(",")[0].startswith(volid + "/")
                                          for v in other.conf.values()):
                    raise TaskError("base volume '%s' is still in use by linked cloned" % volid)

    # --- config ---------------------------------------------------------------
    def _config(self, g, p):
        if p.get("snapshot"):
            snap = g.snapshots.get(p["snapshot"])
            if snap is None:
                die("snapshot '%s' does not exist" % p["snapshot"])
            conf = OrderedDict(snap["conf"])
            conf["snaptime"] = snap["snaptime"]
            if snap.get("description"):
                conf["description"] = snap["description"]
            if snap.get("parent"):
                conf["parent"] = snap["parent"]
        else:
            conf = OrderedDict(g.conf) if p.get("current") else g.effective_conf()
        conf = OrderedDict(sorted(conf.items()))
        if g.kind == "qemu" and conf.get("cipassword"):
            conf["cipassword"] = "**********"       # never the hash, as vm_config does
        conf["digest"] = g.digest()
        return conf

    def lxc_config(self, ctx, p):
        with self.sim.lock:
            return self._config(self.sim.guest(p["node"], p["vmid"], "lxc"), p)

    def qemu_config(self, ctx, p):
        with self.sim.lock:
            return self._config(self.sim.guest(p["node"], p["vmid"], "qemu"), p)

    def lxc_update(self, ctx, p):
        sim = self.sim
        with sim.lock:
            g = sim.guest(p["node"], p["vmid"], "lxc")
        sim.acquire_flock(g)
        try:
            with sim.lock:
                if sim.guests.get(g.vmid) is not g:
                    die("Configuration file '%s' does not exist" % g.config_path())
                msg = g.lock_error()
                if msg:
                    die(msg)
                if p.get("digest") and p["digest"] != g.digest():
                    die("detected modified configuration - file changed by other user? "
                        "Try again.")
                deletes = [x for x in re.split(r"[,;\s]+", p.get("delete", "")) if x]
                reverts = [x for x in re.split(r"[,;\s]+", p.get("revert", "")) if x]
                changes = {k: v for k, v in p.items()
                           if k not in ("node", "vmid", "delete", "revert", "digest")}
                if not (changes or deletes or reverts):
                    die("no options specified")
                self._ct_config_perm(ctx.user, g.vmid, g.conf, {}, deletes)
                self._ct_config_perm(ctx.user, g.vmid, g.conf, {}, reverts)
                errors = {}
                for key in deletes:
                    if key in changes:
                        errors[key] = "can't set and delete the same option"
                    if key == "rootfs":
                        errors["delete"] = "unable to delete required option 'rootfs'"
                if errors:
                    param_error(errors)
                self._ct_config_perm(ctx.user, g.vmid, g.conf, changes)
                if "unprivileged" in changes and \
                        changes["unprivileged"] != g.conf.get("unprivileged", 0):
                    die("unable to modify read-only option: 'unprivileged'")
                running = g.status == "running"
                for key, value in changes.items():
                    if re.fullmatch(r"net\d+", key):
                        value = sim.normalize_net(g.vmid, key, value)
                    if running and not hotpluggable(key):
                        g.pending[key] = value
                        g.pending_delete.discard(key)
                    else:
                        g.conf[key] = value
                        g.pending.pop(key, None)
                for key in deletes:
                    if running and not hotpluggable(key):
                        if key in g.conf:
                            g.pending_delete.add(key)
                        g.pending.pop(key, None)
                    else:
                        g.conf.pop(key, None)
                        g.pending.pop(key, None)
                        g.pending_delete.discard(key)
                for key in reverts:
                    g.pending.pop(key, None)
                    g.pending_delete.discard(key)
                g.conf = OrderedDict(sorted(g.conf.items()))
                sim.changed()
        finally:
            g.flock.release()
        return None

    def lxc_pending(self, ctx, p):
        with self.sim.lock:
            return self._pending(self.sim.guest(p["node"], p["vmid"], "lxc"))

    @staticmethod
    def _pending(g):
        """config_with_pending_array; a VM's cipassword shows as '**********'."""
        out = []
        for key in sorted(set(g.conf) | set(g.pending) | g.pending_delete):
            e = {"key": key}
            if key in g.conf:
                e["value"] = g.conf[key]
            if key in g.pending:
                e["pending"] = g.pending[key]
            if key in g.pending_delete:
                e["delete"] = 1
            if key == "cipassword" and g.kind == "qemu":
                if "value" in e:
                    e["value"] = "**********"
                if "pending" in e:
                    e["pending"] = "********** "
            out.append(e)
        out.append({"key": "digest", "value": g.digest()})
        return out

    # --- power ---------------------------------------------------------------------
    def _precheck(self, p, kind, running_error=None, stopped_error=None):
        """The checks a power call makes before fork_worker (immediate 500s).  They take
        no config file lock: the workers do (lock_config in vm_start, vm_stop, …)."""
        sim = self.sim
        with sim.lock:
            g = sim.guest(p["node"], p["vmid"], kind)
            if running_error and g.status == "running":
                die(running_error % g.vmid)
            if stopped_error and g.status != "running":
                die(stopped_error % g.vmid)
        return g

    def _task_guard(self, g, skiplock=False):
        """First steps of a power worker: reload the config, check_lock."""
        with self.sim.lock:
            if self.sim.guests.get(g.vmid) is not g:
                raise TaskError("Configuration file '%s' does not exist" % g.config_path())
            msg = None if skiplock else g.lock_error()
            if msg:
                raise TaskError(msg)

    def _start_task(self, user, g, skiplock):
        ttype = "vzstart" if g.kind == "lxc" else "qmstart"

        def worker(task):
            with self.sim.locked(g):          # vm_start: lock_config, then load_config
                if self.sim.guests.get(g.vmid) is not g or g.node != task.node:
                    raise TaskError("Configuration file '%s' does not exist"
                                    % g.config_path(task.node))
                with self.sim.lock:
                    if g.conf.get("template"):
                        raise TaskError("you can't start a %s if it's a template" % (
                            "CT" if g.kind == "lxc" else "vm"))
                self._task_guard(g, skiplock)
                with self.sim.lock:
                    if g.status == "running":
                        raise TaskError("%s %d already running" % (g.label(), g.vmid))
                task.work()
                task.injected_failure()
                with self.sim.lock:
                    if g.status == "running":
                        raise TaskError("%s %d already running" % (g.label(), g.vmid))
                    g.apply_pending()
                    if g.kind == "qemu":
                        self.sim.cloudinit_boot(g)
                    self.sim.set_running(g)
                    self.sim.changed()
        return self.sim.spawn(g.node, ttype, g.vmid, user, worker)

    def _stop_task(self, user, g, ttype, skiplock=False, lock_check=True, flock=True):
        def worker(task):
            with (self.sim.locked(g) if flock else contextlib.nullcontext()):
                self._task_guard(g, skiplock or not lock_check)
                task.work()
                task.injected_failure()
                with self.sim.lock:
                    if g.status == "running":
                        self.sim.set_stopped(g)
                        self.sim.changed()
        return self.sim.spawn(g.node, ttype, g.vmid, user, worker)

    def _shutdown_task(self, user, g, ttype, timeout, force):
        def worker(task):
            with self.sim.locked(g):          # vm_shutdown holds it while it waits
                self._shutdown_work(task, g, timeout, force)
        return self.sim.spawn(g.node, ttype, g.vmid, user, worker)

    def _shutdown_work(self, task, g, timeout, force):
        self._task_guard(g)
        if g.shutdown_hangs:
            task.sleep(timeout)
            if not force:
                raise TaskError("container did not stop" if g.kind == "lxc"
                                else "VM quit/powerdown failed - got timeout")
            task.log("forcing stop")
        else:
            task.work()
        task.injected_failure()
        with self.sim.lock:
            if g.status == "running":
                self.sim.set_stopped(g)
                self.sim.changed()

    def _reboot_task(self, user, g, ttype, timeout):
        def work(task):
            self._task_guard(g)
            if g.shutdown_hangs and timeout is not None:
                task.sleep(timeout)
            task.work()
            task.injected_failure()
            with self.sim.lock:
                g.apply_pending()
                if g.kind == "qemu":
                    self.sim.cloudinit_boot(g)
                self.sim.set_running(g)
                self.sim.changed()

        def worker(task):
            if g.kind == "lxc":
                work(task)                  # PVE::LXC::vm_reboot takes no config lock
            else:
                with self.sim.locked(g):    # vm_reboot: lock_config
                    work(task)
        return self.sim.spawn(g.node, ttype, g.vmid, user, worker)

    def _abort_tasks(self, g, ttype):
        with self.sim.lock:
            for t in self.sim.tasks.values():
                if t.status == "running" and t.type == ttype and t.vmid == g.vmid:
                    t.abort.set()

    def lxc_start(self, ctx, p):
        g = self._precheck(p, "lxc", running_error="CT %d already running")
        return self._start_task(ctx.user, g, p.get("skiplock")).upid

    def lxc_stop(self, ctx, p):
        g = self._precheck(p, "lxc", stopped_error="CT %d not running")
        if p.get("overrule-shutdown"):
            self._abort_tasks(g, "vzshutdown")
        return self._stop_task(ctx.user, g, "vzstop", p.get("skiplock")).upid

    def lxc_shutdown(self, ctx, p):
        g = self._precheck(p, "lxc", stopped_error="CT %d not running")
        return self._shutdown_task(ctx.user, g, "vzshutdown", p.get("timeout", 60),
                                   p.get("forceStop")).upid

    def lxc_reboot(self, ctx, p):
        g = self._precheck(p, "lxc", stopped_error="VM %d not running")
        return self._reboot_task(ctx.user, g, "vzreboot", p.get("timeout")).upid

    def lxc_suspend(self, ctx, p):
        g = self._precheck(p, "lxc", stopped_error="CT %d not running")
        return self._stop_task(ctx.user, g, "vzsuspend").upid

    def lxc_resume(self, ctx, p):
        g = self._precheck(p, "lxc", running_error="CT %d already running")

        def worker(task):
            task.work()
            task.injected_failure()
            with self.sim.lock:
                if g.status != "running":
                    self.sim.set_running(g)
                    self.sim.changed()
        return self.sim.spawn(g.node, "vzresume", g.vmid, ctx.user, worker).upid

    def qemu_start(self, ctx, p):
        g = self._precheck(p, "qemu")
        return self._start_task(ctx.user, g, p.get("skiplock")).upid

    def qemu_stop(self, ctx, p):
        g = self._precheck(p, "qemu")
        if p.get("overrule-shutdown"):
            self._abort_tasks(g, "qmshutdown")
        return self._stop_task(ctx.user, g, "qmstop", p.get("skiplock")).upid

    def qemu_shutdown(self, ctx, p):
        g = self._precheck(p, "qemu")
        return self._shutdown_task(ctx.user, g, "qmshutdown", p.get("timeout", 60),
                                   p.get("forceStop")).upid

    def qemu_reboot(self, ctx, p):
        g = self._precheck(p, "qemu", stopped_error="VM %d not running")
        return self._reboot_task(ctx.user, g, "qmreboot", p.get("timeout")).upid

    def qemu_suspend(self, ctx, p):
        g = self._precheck(p, "qemu", stopped_error="VM %d not running")
        if p.get("todisk"):
            self.sim.check(ctx.user, "/vms/%d" % g.vmid, ["VM.Config.Disk"])
            statestorage = p.get("statestorage") or self._vmstate_storage(g)
            self.sim.check(ctx.user, "/storage/%s" % statestorage, ["Datastore.AllocateSpace"])

        def worker(task):
            with self.sim.locked(g):          # vm_suspend: lock_config
                self._task_guard(g, p.get("skiplock"))
                task.work()
                task.injected_failure()
                with self.sim.lock:
                    g.paused = True
        return self.sim.spawn(g.node, "qmsuspend", g.vmid, ctx.user, worker).upid

    @staticmethod
    def _vmstate_storage(g):
        """find_vmstate_storage: vmstatestorage, else the storage of the first disk."""
        if g.conf.get("vmstatestorage"):
            return g.conf["vmstatestorage"]
        for key in sorted(g.conf):
            if DISK_KEY_RE.match(key) and ":" in str(g.conf[key]):
                return str(g.conf[key]).split(":", 1)[0]
        return "local"

    def qemu_resume(self, ctx, p):
        g = self._precheck(p, "qemu", stopped_error="VM %d not running")

        def worker(task):
            with self.sim.locked(g):          # vm_resume: lock_config
                self._task_guard(g, p.get("skiplock"))
                task.work()
                task.injected_failure()
                with self.sim.lock:
                    g.paused = False
        return self.sim.spawn(g.node, "qmresume", g.vmid, ctx.user, worker).upid

    # --- resize ---------------------------------------------------------------------
    def lxc_resize(self, ctx, p):
        sim = self.sim
        with sim.lock:
            g = sim.guest(p["node"], p["vmid"], "lxc")
        disk = p["disk"]
        keys = ROOTFS_KEYS if disk == "rootfs" else MP_KEYS

        def load_and_check():
            """The checks before the fork and again in the worker, under the lock."""
            with sim.lock:
                if sim.guests.get(g.vmid) is not g:
                    die("Configuration file '%s' does not exist" % g.config_path())
                msg = g.lock_error()
                if msg:
                    die(msg)
                # what is left of the parameters is {disk}: VM.Config.Options (as the code is)
                self._ct_config_perm(ctx.user, g.vmid, g.conf, {"disk": disk})
                if p.get("digest") and p["digest"] != g.digest():
                    die("detected modified configuration - file changed by other user? "
                        "Try again.")
                if disk not in g.conf:
                    die("disk '%s' does not exist" % disk)
                mp = parse_property_string(keys, g.conf[disk])
                sim.check(ctx.user, "/storage/%s" % mp["volume"].split(":", 1)[0],
                          ["Datastore.AllocateSpace"])
                size = parse_size(mp.get("size", "0")) or 0
                text = p["size"]
                newsize = parse_size(text.lstrip("+"))
                if newsize is None:
                    die("invalid size string")
                if text.startswith("+"):
                    newsize += size
                newsize = int(newsize)
                if newsize < size:
                    die("unable to shrink disk size")
                if newsize == size:
                    die("disk is already at specified size")
                return mp, size, newsize

        load_and_check()        # early checks before forking and locking: no config lock

        def worker(task):
            with sim.locked(g):
                try:
                    mp, size, newsize = load_and_check()
                except ApiError as e:
                    raise TaskError(e.message)
                vol = mp["volume"].split(":", 1)[-1]
                task.log("  Size of logical volume pve/%s changed from %s to %s." % (
                    vol, format_size(size), format_size(newsize)))
                task.log("  Logical volume pve/%s successfully resized." % vol)
                task.work()
                task.injected_failure()
                task.log("resize2fs 1.47.2 (1-Jan-2025)")
                task.log("The filesystem on /dev/pve/%s is now %d (4k) blocks long."
                         % (vol, newsize // 4096))
                with sim.lock:
                    cur = parse_property_string(keys, g.conf[disk])
                    cur["size"] = format_size(newsize)
                    g.conf[disk] = print_property_string(keys, cur, first=("mp",))
                    sim.changed()
        return sim.spawn(g.node, "resize", g.vmid, ctx.user, worker).upid

    # --- snapshots ------------------------------------------------------------------
    def snapshot_list(self, ctx, p):
        with self.sim.lock:
            g = self.sim.guest(p["node"], p["vmid"], ctx.kind)
            out = []
            for name, s in sorted(g.snapshots.items(), key=lambda kv: kv[1]["snaptime"]):
                e = {"name": name, "snaptime": s["snaptime"],
                     "description": s.get("description", "")}
                if s.get("parent"):
                    e["parent"] = s["parent"]
                if s.get("snapstate"):
                    e["snapstate"] = s["snapstate"]
                if g.kind == "qemu":
                    e["vmstate"] = s.get("vmstate", 0)
                out.append(e)
            cur = {"name": "current", "description": "You are here!",
                   "running": 1 if g.status == "running" else 0, "digest": g.digest()}
            if g.conf.get("parent"):
                cur["parent"] = g.conf["parent"]
            out.append(cur)
            return out

    def snapshot_create(self, ctx, p):
        sim = self.sim
        name = p["snapname"]
        with sim.lock:
            g = sim.guest(p["node"], p["vmid"], ctx.kind)
            for reserved in RESERVED_SNAPNAMES:
                if name.lower() == reserved:
                    die("unable to use snapshot name '%s' (reserved name)" % reserved)

        def worker(task):
            with sim.locked(g), sim.lock:     # __snapshot_prepare: lock_config
                if sim.guests.get(g.vmid) is not g:
                    raise TaskError("Configuration file '%s' does not exist" % g.config_path())
                if g.conf.get("template"):
                    raise TaskError("you can't take a snapshot if it's a template")
                msg = g.lock_error()
                if msg:
                    raise TaskError(msg)
                if name in g.snapshots:
                    raise TaskError("snapshot name '%s' already used" % name)
                g.conf["lock"] = "snapshot"
                conf = OrderedDict((k, v) for k, v in g.conf.items()
                                   if k not in ("lock", "parent"))
                g.snapshots[name] = {"snaptime": int(now()), "snapstate": "prepare",
                                     "description": p.get("description", ""),
                                     "parent": g.conf.get("parent"), "conf": conf,
                                     "vmstate": 1 if p.get("vmstate") and
                                     g.status == "running" else 0}
                sim.changed()
            try:
                root = g.conf.get(g.root_key() or "", "")
                vol = str(root).split(",")[0].split(":", 1)[-1]
                task.log('  Logical volume "snap_%s_%s" created.' % (vol, name))
                task.work()
                task.injected_failure()
            except TaskError:
                with sim.lock:
                    g.snapshots.pop(name, None)
                    g.conf.pop("lock", None)
                    sim.changed()
                raise
            with sim.locked(g), sim.lock:     # __snapshot_commit
                g.snapshots[name].pop("snapstate", None)
                g.conf["parent"] = name
                g.conf.pop("lock", None)
                g.conf = OrderedDict(sorted(g.conf.items()))
                sim.changed()
        ttype = "vzsnapshot" if g.kind == "lxc" else "qmsnapshot"
        return sim.spawn(g.node, ttype, g.vmid, ctx.user, worker).upid

    def snapshot_delete(self, ctx, p):
        sim = self.sim
        name = p["snapname"]
        with sim.lock:
            g = sim.guest(p["node"], p["vmid"], ctx.kind)

        def worker(task):
            with sim.locked(g), sim.lock:     # __snapshot_prepare: lock_config
                snap = g.snapshots.get(name)
                if snap is None:
                    raise TaskError("snapshot '%s' does not exist" % name)
                msg = g.lock_error()
                if msg and not p.get("force"):
                    raise TaskError(msg)
                g.conf["lock"] = "snapshot-delete"
                snap["snapstate"] = "delete"
                sim.changed()
            try:
                task.work()
                task.injected_failure()
            except TaskError:
                with sim.lock:
                    snap.pop("snapstate", None)
                    g.conf.pop("lock", None)
                    sim.changed()
                raise
            with sim.locked(g), sim.lock:
                del g.snapshots[name]
                for other in g.snapshots.values():
                    if other.get("parent") == name:
                        other["parent"] = snap.get("parent")
                if g.conf.get("parent") == name:
                    if snap.get("parent"):
                        g.conf["parent"] = snap["parent"]
                    else:
                        g.conf.pop("parent")
                g.conf.pop("lock", None)
                sim.changed()
        ttype = "vzdelsnapshot" if g.kind == "lxc" else "qmdelsnapshot"
        return sim.spawn(g.node, ttype, g.vmid, ctx.user, worker).upid

    def snapshot_rollback(self, ctx, p):
        sim = self.sim
        name = p["snapname"]
        with sim.lock:
            g = sim.guest(p["node"], p["vmid"], ctx.kind)

        def worker(task):
            with sim.locked(g), sim.lock:     # __snapshot_prepare: lock_config
                snap = g.snapshots.get(name)
                if snap is None:
                    raise TaskError("snapshot '%s' does not exist" % name)
                msg = g.lock_error()
                if msg:
                    raise TaskError(msg)
                g.conf["lock"] = "rollback"
                if g.status == "running":
                    task.log("stopping %s %d" % (g.label(), g.vmid))
                    sim.set_stopped(g)
                sim.changed()
            try:
                task.work()
                task.injected_failure()
            except TaskError:
                with sim.lock:
                    g.conf.pop("lock", None)
                    sim.changed()
                raise
            with sim.locked(g), sim.lock:
                g.conf = OrderedDict(sorted(dict(snap["conf"], parent=name).items()))
                g.pending.clear()
                g.pending_delete.clear()
                sim.changed()
            if p.get("start") or (g.kind == "qemu" and snap.get("vmstate")):
                self._start_task(ctx.user, g, skiplock=False)
        ttype = "vzrollback" if g.kind == "lxc" else "qmrollback"
        return sim.spawn(g.node, ttype, g.vmid, ctx.user, worker).upid

    def snapshot_index(self, ctx, p):
        return [{"cmd": "rollback"}, {"cmd": "config"}]

    def snapshot_config(self, ctx, p):
        with self.sim.lock:
            g = self.sim.guest(p["node"], p["vmid"], ctx.kind)
            snap = g.snapshots.get(p["snapname"])
            if snap is None:
                die("snapshot '%s' does not exist" % p["snapname"])
            conf = OrderedDict(sorted(snap["conf"].items()))
            conf["snaptime"] = snap["snaptime"]
            if snap.get("description"):
                conf["description"] = snap["description"]
            if snap.get("parent"):
                conf["parent"] = snap["parent"]
            return conf

    def snapshot_update(self, ctx, p):
        sim = self.sim
        with sim.lock:
            g = sim.guest(p["node"], p["vmid"], ctx.kind)
        if "description" not in p:
            return None
        sim.acquire_flock(g)
        try:
            with sim.lock:
                msg = g.lock_error()
                if msg:
                    die(msg)
                snap = g.snapshots.get(p["snapname"])
                if snap is None:
                    die("snapshot '%s' does not exist" % p["snapname"])
                snap["description"] = p["description"]
        finally:
            g.flock.release()
        return None

    # --- rrd ------------------------------------------------------------------------
    def guest_rrddata(self, ctx, p):
        with self.sim.lock:
            g = self.sim.guests.get(p["vmid"])
            if g is None:
                die("RRD error: opening '/var/lib/rrdcached/db/pve-vm-9.0/%d': "
                    "No such file or directory" % p["vmid"])
            node = self.sim.nodes[g.node]
            cur = g.stats(node.cpus)
            created, changed, usage_changed = g.created, g.status_changed, g.usage_changed
            running = g.status == "running"
            base_cpu, maxmem, maxdisk = cur["cpus"], cur["maxmem"], cur["maxdisk"]
            cpu0 = g.cpu_override if g.cpu_override is not None else g.cpu_base
            mem0 = g.mem_override if g.mem_override is not None else int(maxmem * g.mem_frac)
            disk0 = g.disk_override if g.disk_override is not None else \
                int(maxdisk * g.disk_frac)
            net, io, vmid, kind = g.net_rate, g.io_rate, g.vmid, g.kind
        step, count = RRD_STEPS[p["timeframe"]]
        peak = p.get("cf") == "MAX"
        end = int(now()) // step * step
        out = []
        for i in range(count):
            t = end - (count - 1 - i) * step
            if t + step <= created:
                out.append({"time": t})
                continue
            exact = usage_changed and t + step > usage_changed
            up = running or t + step <= changed     # a window that ends after a stop: down
            if exact or not up:
                w = 1.0
            else:
                w = 1 + 0.3 * math.sin(2 * math.pi * t / 86400.0 + vmid) + \
                    0.1 * (unit_float("rrd", vmid, t) - 0.5)
                if peak:
                    w *= 1.2
            e = {"time": t, "maxcpu": float(base_cpu), "maxmem": float(maxmem),
                 "maxdisk": float(maxdisk), "disk": float(disk0 if kind == "lxc" else 0)}
            if not up:
                # pvestatd writes "unknown" for the usage of a stopped guest: those
                # fields are left out
                out.append(e)
                continue
            pressure = unit_float("pressure", vmid)
            e.update(cpu=round(min(1.0, cpu0 * w), 6), mem=float(int(min(maxmem, mem0 * w))),
                     netin=round(net * w, 2), netout=round(net / 3 * w, 2),
                     diskread=round(io * w, 2), diskwrite=round(io / 2 * w, 2),
                     pressurecpusome=round(0.5 * pressure, 2),
                     pressureiosome=round(0.3 * pressure, 2), pressurememorysome=0.0)
            if kind == "qemu":
                # memhost and the "full" pressures are in a VM's RRD (update_qemu_status)
                e.update(memhost=e["mem"], pressurecpufull=round(0.2 * pressure, 2),
                         pressureiofull=round(0.1 * pressure, 2), pressurememoryfull=0.0)
            out.append(e)
        return out

    # --- consoles ---------------------------------------------------------------------
    def _console(self, ctx, p, kind):
        """vncproxy (kind "vnc") and termproxy ("term") of pve-container and
        qemu-server: a port from 5900-5999 (each node has its own), a PVEVNC ticket for (user, /vms/N, port), and
        a "vncproxy" task (both calls use that type) running the proxy, which waits
        console_timeout seconds for its one client and lives as long as the session."""
        sim = self.sim
        with sim.lock:
            g = sim.guest(p["node"], p["vmid"], ctx.kind)
            port = next((n for n in range(5900, 6000)
                         if (g.node, n) not in sim.console_ports), None)
            if port is None:
                die("unable to find free port (5900-5999)")
            sim.console_ports[(g.node, port)] = None    # reserved until the session exists
            serial = None
            if ctx.kind == "qemu":
                if kind == "term":
                    serial = p.get("serial")
                vga = g.effective_conf().get("vga") or ""
                m = re.match(r"(?:type=)?(serial\d)(?:,|$)", vga)
                if m and serial is None:
                    serial = m.group(1)
        authpath = "/vms/%d" % g.vmid
        ticket = sim.vnc_ticket(ctx.user, authpath, port)
        password = None
        if kind == "vnc":
            if ctx.kind == "qemu":
                want = p.get("generate-password") or serial is None or p.get("websocket")
            else:
                want = p.get("websocket")
            if want:
                # PVE::Ticket::generate_vnc_password: 8 characters from '!' .. '`'
                password = "".join(chr(33 + secrets.randbelow(64)) for _ in range(8))
        session = ConsoleSession(sim, kind, g, port, ctx.user, ticket, password,
                                 websocket=bool(p.get("websocket")), serial=serial)
        with sim.lock:
            sim.console_ports[(g.node, port)] = session
        task = sim.spawn(g.node, "vncproxy", g.vmid, ctx.user, session.worker)
        session.task = task
        session.upid = task.upid
        res = {"user": ctx.user, "ticket": ticket, "port": port, "upid": task.upid}
        if kind == "vnc":
            res["cert"] = sim.ca_pem
            if password is not None:
                res["password"] = password
                res["ticket"] = "%s:%s" % (password, ticket)   # the "hack" both keep
        return res

    def vncproxy(self, ctx, p):
        return self._console(ctx, p, "vnc")

    def termproxy(self, ctx, p):
        return self._console(ctx, p, "term")

    def vncwebsocket(self, ctx, p):
        """GET …/vncwebsocket: the ticket must be for this user, /vms/N and the port
        (else 401 permission denied - invalid PVEVNC ticket); qemu-server also loads the
        config.  Answers {"port": "N"}; with the upgrade headers the handler turns the
        connection into a WebSocket to the port's console (Handler.websocket_session)."""
        sim = self.sim
        if not sim.verify_vnc_ticket(p["vncticket"], ctx.user, "/vms/%d" % p["vmid"],
                                     p["port"]):
            time.sleep(sim.auth_fail_delay)     # pve-http-server delays every 401
            raise ApiError(401, "permission denied - invalid PVEVNC ticket", close=True)
        if ctx.kind == "qemu":
            with sim.lock:
                sim.guest(p["node"], p["vmid"], "qemu")
        return {"port": str(p["port"])}

    def access_vncticket(self, ctx, p):
        """POST /access/vncticket (verify_vnc_ticket): null, or 401 authentication
        failure (delayed) whatever was wrong."""
        sim = self.sim
        with sim.lock:
            ok = sim.vncticket_ok(p["authid"], p["vncticket"], p["path"], p["privs"],
                                  p.get("port"))
        if not ok:
            time.sleep(sim.auth_fail_delay)
            raise ApiError(401, "authentication failure", close=True)
        return None

    # --- QEMU config (qemu-server API2/Qemu.pm update_vm_api) -------------------------
    def _qemu_drive(self, key, value):
        """parse_drive: the drive's properties (file first)."""
        return parse_property_string(qemu_drive_keys(key), value)

    def _qemu_config_perm(self, user, vmid, keys):
        """check_vm_modify_config_perm, option by option (sorted; Perl walks a hash).
        Disks, serial/usb/hostpci ports and tags are checked where they are applied; the
        options only root@pam may set (args, lock, …) are not simulated."""
        if user == "root@pam":
            return
        sim = self.sim
        vms = "/vms/%d" % vmid
        for opt in sorted(keys):
            if QEMU_DRIVE_RE.match(opt) or opt in ("cdrom", "tags") or \
                    re.fullmatch(r"(?:unused|serial|usb|hostpci|virtiofs)\d+", opt):
                continue
            if opt in QEMU_CPU_OPTIONS or re.fullmatch(r"numa\d+", opt):
                sim.check(user, vms, ["VM.Config.CPU"])
            elif opt in QEMU_MEMORY_OPTIONS:
                sim.check(user, vms, ["VM.Config.Memory"])
            elif opt in QEMU_HWTYPE_OPTIONS:
                sim.check(user, vms, ["VM.Config.HWType"])
            elif opt in QEMU_GENERAL_OPTIONS:
                sim.check(user, vms, ["VM.Config.Options"])
                if opt == "startup":
                    sim.check(user, "/", ["Sys.Modify"])
            elif opt == "freeze":
                sim.check(user, vms, ["VM.PowerMgmt"])
            elif opt in ("boot", "bootdisk", "vmstatestorage"):
                sim.check(user, vms, ["VM.Config.Disk"])
            elif re.fullmatch(r"net\d+", opt):
                sim.check(user, vms, ["VM.Config.Network"])
            elif opt in QEMU_CLOUDINIT_OPTIONS or re.fullmatch(r"ipconfig\d+", opt):
                sim.check(user, vms, ["VM.Config.Cloudinit", "VM.Config.Network"], any_=True)
            elif opt == "vmstate":
                sim.check(user, vms, ["VM.Config.Disk", "VM.PowerMgmt"])

    def _qemu_drive_perm(self, user, vmid, key, value):
        """check_drive_perms: a cloud-init disk needs VM.Config.Cloudinit or
        VM.Config.CDROM, a CD-ROM VM.Config.CDROM, any other disk VM.Config.Disk."""
        vms = "/vms/%d" % vmid
        spec = value.split(",", 1)[0]
        if is_cloudinit(value) or spec.endswith(":cloudinit") or spec == "cloudinit":
            self.sim.check(user, vms, ["VM.Config.Cloudinit", "VM.Config.CDROM"], any_=True)
        elif is_cdrom(value):
            self.sim.check(user, vms, ["VM.Config.CDROM"])
        else:
            self.sim.check(user, vms, ["VM.Config.Disk"])

    def _qemu_storage_access(self, user, node, vmid, params):
        """check_storage_access for the disks in the request."""
        sim = self.sim
        for key, value in sorted(params.items()):
            if not QEMU_DRIVE_RE.match(key):
                continue
            drive = self._qemu_drive(key, value)
            volid = drive["file"]
            cdrom = drive.get("media") == "cdrom" or volid in ("cdrom", "none")
            if volid in ("none", "cloudinit") or volid.endswith(":cloudinit"):
                continue
            if cdrom and volid == "cdrom":
                sim.check(user, "/", ["Sys.Console"])
                continue
            m = re.fullmatch(r"(([^/:\s]+):)?(\d+(\.\d+)?)", volid)
            if not cdrom and m:
                sid = m.group(2)
                if not sid:
                    die("no storage ID specified (and no default storage)")
                sim.check(user, "/storage/%s" % sid, ["Datastore.AllocateSpace"])
                st = sim.storage(node, sid)
                if "images" not in st.content:
                    param_error({"storage": "storage '%s' does not support vm images" % sid})
                continue
            self._volume_access(user, vmid, volid)

    def _qemu_normalize(self, vmid, params):
        """What update_vm_api does to the values before it checks permissions: the
        'cdrom' alias, a MAC for every netN, vmgenid=1 → a new UUID."""
        if "cdrom" in params:
            value = params.pop("cdrom")
            if "media=" not in value:
                value += ",media=cdrom"
            params["ide2"] = value
        for key, value in list(params.items()):
            if QEMU_DRIVE_RE.match(key):
                drive = parse_property_string(qemu_drive_keys(key), value)
                m = re.fullmatch(r"(([^/:\s]+):)?(\d+(\.\d+)?)", drive["file"])
                if drive.get("import-from") and (not m or float(m.group(3)) != 0):
                    param_error({key: "'import-from' requires special syntax - use "
                                      "<storage ID>:0,import-from=<source>"})
            if re.fullmatch(r"net\d+", key):
                net = parse_property_string(QM_NET_KEYS, value)
                if not net.get("macaddr"):
                    net["macaddr"] = random_mac()
                params[key] = print_property_string(QM_NET_KEYS, net)
            elif key == "vmgenid" and value == "1":
                params[key] = str(uuid.uuid4())
        return params

    def _check_ssh_keys(self, keys):
        """PVE::Tools::validate_ssh_public_keys (ssh-keygen -l on every line)."""
        for line in keys.split("\n"):
            if line.strip() and not re.match(
                    r"(ssh-|ecdsa-|sk-ssh-|sk-ecdsa-)\S+ [A-Za-z0-9+/=]+( .*)?$", line.strip()):
                die("SSH public key validation error")

    def _qemu_update(self, ctx, p, sync):
        sim = self.sim
        user = ctx.user
        node, vmid = p["node"], p["vmid"]
        digest = p.get("digest")
        skiplock = p.get("skiplock")
        force = p.get("force")
        params = {k: v for k, v in p.items() if k not in QEMU_UPDATE_META}
        logline = "update VM %d: %s" % (vmid, " ".join(
            "-%s %s" % (k, "<hidden>" if k == "cipassword" else v)
            for k, v in sorted(p.items()) if k not in ("node", "vmid", "digest",
                                                       "background_delay",
                                                       "import-working-storage")))
        if "sshkeys" in params:
            self._check_ssh_keys(urllib.parse.unquote(params["sshkeys"]))
        delete_str, revert_str = p.get("delete", ""), p.get("revert", "")
        if not delete_str and not revert_str and not params:
            die("no options specified")
        self._qemu_normalize(vmid, params)
        reverts = []
        for opt in split_list(revert_str):
            if not qemu_option_exists(opt):
                param_error({"revert": "unknown option '%s'" % opt})
            if opt in params:
                param_error({"delete": "you can't use '-%s' and -revert %s' at the same time"
                                       % (opt, opt)})
            reverts.append(opt)
        deletes = []
        for opt in split_list(delete_str):
            opt = "ide2" if opt == "cdrom" else opt
            if opt in params:
                param_error({"delete": "you can't use '-%s' and -delete %s' at the same time"
                                       % (opt, opt)})
            if opt in reverts:
                param_error({"revert": "you can't use '-delete %s' and -revert %s' at the "
                                       "same time" % (opt, opt)})
            if not qemu_option_exists(opt):
                param_error({"delete": "unknown option '%s'" % opt})
            deletes.append(opt)
        self._qemu_config_perm(user, vmid, deletes)
        self._qemu_config_perm(user, vmid, params)
        self._qemu_storage_access(user, node, vmid, params)
        for key, value in sorted(params.items()):
            if re.fullmatch(r"net\d+", key):
                self._bridge_access(user, value, QM_NET_KEYS)

        def load_and_check():
            """$load_and_check_config: before the fork and again under the lock."""
            with sim.lock:
                g = sim.guest(node, vmid, "qemu")
                if digest and digest != g.digest():
                    die("checksum mismatch (file change by other user?)")
                msg = None if skiplock else g.lock_error()
                if msg:
                    die(msg)
                if params.get("memory") or "balloon" in params:
                    memory = params.get("memory") or g.pending.get("memory") or \
                        g.conf.get("memory", "512")
                    maxmem = int(str(memory).split("=")[-1])
                    balloon = params["balloon"] if "balloon" in params else \
                        g.pending.get("balloon", g.conf.get("balloon"))
                    if balloon and int(balloon) > maxmem:
                        die("balloon value too large (must be smaller than assigned memory)")
                return g

        g = load_and_check()            # early checks before forking/locking

        def update(log):
            g2 = load_and_check()
            if g2 is not g:
                die("Configuration file '%s' does not exist" % g.config_path())
            with sim.lock:
                log(logline)
                self._qemu_apply(user, g, params, deletes, reverts, force, log)
                sim.changed()

        if sync:
            with sim.locked(g, in_task=False):
                update(lambda line: None)
            return None

        def worker(task):
            with sim.locked(g):
                task.work()
                task.injected_failure()     # a task_error fault: nothing changes
                update(task.log)
        task = sim.spawn(node, "qmconfig", vmid, user, worker)
        delay = p.get("background_delay")
        if delay:
            # wait up to background_delay seconds: null when the task ended well in time
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and task.status == "running":
                time.sleep(0.05)
            if task.status != "running":
                if task.exitstatus == "OK" or task.exitstatus.startswith("WARNINGS"):
                    return None
                die("failed to update VM %d: %s" % (vmid, task.exitstatus))
        return task.upid

    def qemu_update_async(self, ctx, p):
        return self._qemu_update(ctx, p, sync=False)

    def qemu_update_sync(self, ctx, p):
        return self._qemu_update(ctx, p, sync=True)

    def _qemu_new_disk(self, g, key, value, taken=()):
        """create_disks for one drive: STORAGE:SIZE allocates a volume, STORAGE:cloudinit
        the cloud-init disk; anything else is used as given."""
        sim = self.sim
        keys = qemu_drive_keys(key)
        drive = parse_property_string(keys, value)
        volid = drive["file"]
        m = re.fullmatch(r"(([^/:\s]+):)?(\d+(\.\d+)?)", volid)
        if m and not drive.get("media") == "cdrom":
            sid = m.group(2)
            st = sim.storage(g.node, sid)
            fmt = drive.pop("format", None) if st.kind in FILE_STORAGES else None
            drive.pop("format", None)
            drive["file"] = sim.alloc_volume(g, sid, g.node, fmt, taken)
            size = int(float(m.group(3)) * GiB)
            source = drive.pop("import-from", None)
            if source:
                # STORAGE:0,import-from=<volume>: the copy has the source's size
                size = self._volume_size(g.node, source) or 2 * GiB
            drive["size"] = format_size(size)
        elif volid.endswith(":cloudinit"):
            sid = volid.split(":", 1)[0]
            drive["file"] = sim.alloc_volume(g, sid, g.node, drive.pop("format", None),
                                             cloudinit=True)
            drive["media"] = "cdrom"
        return print_property_string(keys, drive)

    def _volume_size(self, node, volid):
        """The size of a volume the node knows (a guest volume or a file), else None."""
        sim = self.sim
        sid = volid.split(":", 1)[0]
        vol = sim.guest_volumes(node).get(sid, {}).get(volid)
        if vol:
            return vol["size"]
        st = sim.nodes[node].storages.get(sid)
        if st is not None and volid in st.files:
            return st.files[volid]["size"]
        return None

    def _add_unused(self, g, volid):
        """vmconfig_register_unused_drive / add_unused_volume: the first free unusedN."""
        if any(str(v).split(",")[0] == volid for k, v in g.conf.items()
               if k.startswith("unused")):
            return
        i = 0
        while "unused%d" % i in g.conf:
            i += 1
        g.conf["unused%d" % i] = volid

    def _qemu_drop_drive(self, g, key, value, force):
        """A drive leaves the config: a disk becomes unusedN (freed with force), a
        cloud-init disk is freed, a CD-ROM is just removed."""
        if is_cdrom(value) and not is_cloudinit(value):
            return
        volid = str(value).split(",")[0]
        if is_cloudinit(value) or force or key.startswith("unused") or ":" not in volid:
            return
        self._add_unused(g, volid)

    def _qemu_apply(self, user, g, params, deletes, reverts, force, log):
        """The update (updatefn): write everything to [PENDING], then apply what can be
        applied: everything on a stopped VM (vmconfig_apply_pending), what is hot-pluggable
        on a running one (vmconfig_hotplug_pending).  Holds sim.lock."""
        sim = self.sim
        for opt in reverts:
            if opt in g.conf:
                params[opt] = g.conf[opt]
            if opt in g.pending:
                g.pending.pop(opt, None)
            g.pending_delete.discard(opt)
        for opt in deletes:
            value = g.conf.get(opt, g.pending.get(opt))
            if value is None:
                log("cannot delete '%s' - not set in current configuration!" % opt)
                continue
            g.pending.pop(opt, None)
            if opt.startswith("unused"):
                if g.conf.get("protection"):
                    die("can't remove unused disk '%s' - protection mode enabled"
                        % str(value).split(",")[0])
                sim.check(user, "/vms/%d" % g.vmid, ["VM.Config.Disk"])
                g.conf.pop(opt, None)       # the volume is freed at once
                continue
            if QEMU_DRIVE_RE.match(opt):
                if g.conf.get("protection"):
                    die("can't remove drive '%s' - protection mode enabled" % opt)
                self._qemu_drive_perm(user, g.vmid, opt, value)
            if re.fullmatch(r"net\d+", opt) and opt in g.conf:
                self._bridge_access(user, g.conf[opt], QM_NET_KEYS)
            if opt in g.conf:
                g.pending_delete.add(opt)
        taken = []
        for opt, value in sorted(params.items()):
            if g.pending.get(opt) == value:
                continue
            if QEMU_DRIVE_RE.match(opt):
                if g.conf.get(opt):
                    self._qemu_drive_perm(user, g.vmid, opt, g.conf[opt])
                self._qemu_drive_perm(user, g.vmid, opt, value)
                value = self._qemu_new_disk(g, opt, value, taken)
                taken.append(value)
                g.pending[opt] = value
            elif re.fullmatch(r"net\d+", opt):
                if opt in g.conf:           # the bridge it leaves is checked too
                    self._bridge_access(user, g.conf[opt], QM_NET_KEYS)
                g.pending[opt] = value
            elif opt == "cipassword":
                # stored at once (not pending), crypt()ed unless it already is a hash
                if re.match(r"\$(?:[156]|2[ay])(\$.+){2}", value):
                    g.ci_secret = {"hash": value}
                    g.conf["cipassword"] = value
                else:
                    g.ci_secret = {"sha256": hashlib.sha256(value.encode()).hexdigest()}
                    g.conf["cipassword"] = crypt_sha256(value)
            elif opt == "tags":
                tags = []
                for t in split_list(value):
                    if t not in tags:
                        tags.append(t)
                g.pending[opt] = ";".join(tags)
            else:
                g.pending[opt] = value
            g.pending_delete.discard(opt)
        for opt in list(g.pending):           # cleanup_pending: nothing changes
            if opt in g.conf and str(g.conf[opt]) == str(g.pending[opt]):
                del g.pending[opt]
        running = g.status == "running"
        hotplug = qemu_hotplug_features(g.conf.get("hotplug"))
        for opt in sorted(g.pending_delete):
            if running and not qemu_hotpluggable(opt, None, g.conf, hotplug, delete=True):
                continue
            old = g.conf.pop(opt, None)
            g.pending_delete.discard(opt)
            if old is not None and QEMU_DRIVE_RE.match(opt):
                self._qemu_drop_drive(g, opt, old, force)
        for opt in sorted(g.pending):
            value = g.pending[opt]
            if running and not qemu_hotpluggable(opt, value, g.conf, hotplug):
                continue
            old = g.conf.get(opt)
            g.conf[opt] = value
            del g.pending[opt]
            if old is not None and QEMU_DRIVE_RE.match(opt) and \
                    str(old).split(",")[0] != str(value).split(",")[0]:
                self._qemu_drop_drive(g, opt, old, False)
        g.conf = OrderedDict(sorted(g.conf.items()))

    def qemu_pending(self, ctx, p):
        with self.sim.lock:
            g = self.sim.guest(p["node"], p["vmid"], "qemu")
            return self._pending(g)

    # --- QEMU clone (clone_vm) and templates -------------------------------------------
    def _storage_enabled(self, node, sid):
        """PVE::Storage::storage_check_enabled."""
        st = self.sim.storage(node, sid)
        if not st.enabled:
            die("storage '%s' is disabled" % sid)
        return st

    def _clone_feature(self, g, volid, snapname):
        """volume_has_feature(…, 'clone', …): lvm-thin clones base volumes and
        snapshots, file storages qcow2 base images."""
        sid, _, volname = volid.partition(":")
        st = self.sim.nodes[g.node].storages.get(sid)
        if st is None:
            return False
        base = re.search(r"(?:^|/)base-\d+-disk-\d+(?:\.\w+)?$", volname) is not None
        if st.kind == "lvmthin":
            return base or bool(snapname)
        if st.kind in FILE_STORAGES:
            return volname.endswith(".qcow2") and (base or bool(snapname))
        return base

    def qemu_clone(self, ctx, p):
        sim = self.sim
        user = ctx.user
        node, vmid, newid = p["node"], p["vmid"], p["newid"]
        pool, snapname = p.get("pool"), p.get("snapname")
        storage, fmt = p.get("storage"), p.get("format")
        target = p.get("target")
        if target in (node, "localhost"):
            target = None

        def load_and_check():
            """$load_and_check: before the fork, and in the worker under the locks.
            Holds sim.lock."""
            if pool is not None:
                raise perm_error("pool '%s' does not exist" % pool)   # check_pool_exist
            if target and target not in sim.nodes:
                die("no such cluster node '%s'" % target)
            if storage:
                st = self._storage_enabled(node, storage)
                if "images" not in st.content:
                    param_error({"storage": "storage '%s' does not support vm images"
                                            % storage})
                if target:
                    self._storage_enabled(target, storage)
                    if not st.shared:
                        die("can't clone to non-shared storage '%s'" % storage)
            g = sim.guest(node, vmid, "qemu")
            msg = g.lock_error()
            if msg:
                die(msg)
            running = g.status == "running"
            if snapname and snapname not in g.snapshots:
                die("snapshot '%s' does not exist" % snapname)
            full = p["full"] if "full" in p else not g.conf.get("template")
            if storage is not None and not full:
                die("parameter 'storage' not allowed for linked clones")
            if fmt is not None and not full:
                die("parameter 'format' not allowed for linked clones")
            oldconf = g.snapshots[snapname]["conf"] if snapname else g.conf
            # check_storage_access_clone: Datastore.AllocateSpace on every disk's storage
            # (or on 'storage'); a VM with a volume on a local storage is not "shared"
            sharedvm = True
            for key in sorted(oldconf):
                if not QEMU_DRIVE_RE.match(key):
                    continue
                value = str(oldconf[key])
                volid = value.split(",")[0]
                if volid in ("", "none"):
                    continue
                if is_cdrom(value) and volid == "cdrom":
                    sim.check(user, "/", ["Sys.Console"])
                    continue
                sid = volid.split(":", 1)[0]
                st = sim.nodes[node].storages.get(sid)
                if st is None:
                    die("storage '%s' does not exist" % sid)
                if not st.shared:
                    sharedvm = False
                if not is_cdrom(value):
                    sim.check(user, "/storage/%s" % (storage or sid),
                              ["Datastore.AllocateSpace"])
            if oldconf.get("vmstatestorage"):
                sim.check(user, "/storage/%s" % oldconf["vmstatestorage"],
                          ["Datastore.AllocateSpace"])
            for key in sorted(oldconf):
                if re.fullmatch(r"net\d+", key):
                    self._bridge_access(user, oldconf[key], QM_NET_KEYS)
            if target and not sharedvm:
                die("can't clone VM to node '%s' (VM uses local storage)" % target)
            other = sim.guests.get(newid)
            if other is not None and other.kind == "qemu" and other.node == node:
                die("unable to create VM %d: config file already exists" % newid)
            newconf = OrderedDict(lock="clone")
            drives = OrderedDict()
            fullclone = set()
            for opt in sorted(oldconf):
                value = oldconf[opt]
                if opt in ("snapshots", "parent", "snaptime", "vmstate", "snapstate",
                           "runningcpu", "runningmachine", "running-nets-host-mtu") or \
                        opt.startswith("unused"):
                    continue
                if full and running and not snapname and opt == "tpmstate0":
                    die("cannot clone TPM state while VM is running")
                if re.fullmatch(r"net\d+", opt):        # always a new MAC
                    net = parse_property_string(QM_NET_KEYS, value)
                    net["macaddr"] = random_mac()
                    newconf[opt] = print_property_string(QM_NET_KEYS, net)
                elif QEMU_DRIVE_RE.match(opt):
                    if is_cdrom(value) and not is_cloudinit(value):
                        newconf[opt] = value            # a CD-ROM: copied as it is
                        continue
                    volid = str(value).split(",")[0]
                    what = "clone feature is not supported for%s '%s' (%s)" % (
                        " a snapshot of" if snapname else "", volid, opt)
                    if full or is_cloudinit(value) or opt == "tpmstate0":
                        fullclone.add(opt)
                    elif not self._clone_feature(g, volid, snapname):
                        die("Linked " + what)
                    drives[opt] = value
                else:
                    newconf[opt] = value
            return g, running, full, oldconf, newconf, drives, fullclone

        with sim.lock:
            g, running, full, _, _, _, _ = load_and_check()   # early checks

        def worker(task):
            quick = sim.lock_timeout / 10.0     # lock_config_full($vmid, 1, …)
            # the source: a shared lock when stopped (clones of a template run side by
            # side), an exclusive one when running; then the new id's lock
            with sim.locked(g, timeout=quick, shared=not running):
                newg = Guest(newid, "qemu", node, OrderedDict())
                newg.flock.acquire()
                try:
                    self._clone_work(task, p, load_and_check, newg, target)
                finally:
                    newg.flock.release()
        return sim.spawn(node, "qmclone", vmid, user, worker).upid

    def _clone_work(self, task, p, load_and_check, newg, target):
        sim = self.sim
        vmid, newid, node = p["vmid"], p["newid"], p["node"]
        with sim.lock:
            try:
                g, running, full, oldconf, newconf, drives, fullclone = load_and_check()
            except ApiError as e:
                raise TaskError(e.message)
            task.log("creating a clone of VM %d with ID %d" % (vmid, newid))
            newconf["smbios1"] = re.sub(r"uuid=[^,]*", "", newconf.get("smbios1", "")).strip(",")
            newconf["smbios1"] = ",".join(x for x in ("uuid=%s" % uuid.uuid4(),
                                                      newconf["smbios1"]) if x)
            if newconf.get("vmgenid"):
                newconf["vmgenid"] = str(uuid.uuid4())
            newconf.pop("template", None)
            newconf["name"] = p.get("name") or "Copy-of-VM-%s" % (oldconf.get("name") or vmid)
            if p.get("description"):
                newconf["description"] = p["description"]
            if newid in sim.guests:
                # pmxcfs refuses a second config for a vmid (on this or another node)
                raise TaskError("close (rename) atomic file '/etc/pve/nodes/%s/qemu-server/"
                                "%d.conf' failed: File exists" % (node, newid))
            newg.conf = OrderedDict(lock="clone")   # "# qmclone temporary file"
            newg.created = now()
            sim.guests[newid] = newg
            sim.changed()
        try:
            total_gb = 0.0                  # a full copy takes longer with the size
            for opt, value in drives.items():
                m = re.search(r"(?:^|,)size=([^,]+)", value)
                if opt in fullclone and m:
                    total_gb += (parse_size(m.group(1)) or 0) / GiB
            per_drive = (DURATIONS["qmclone"] + 0.1 * total_gb) / max(1, len(drives))
            done = []
            for opt, value in drives.items():
                with sim.lock:
                    newvalue = self._clone_drive(task, g, newg, opt, value, opt in fullclone,
                                                 p, done)
                done.append(newvalue)
                newconf[opt] = newvalue
                task.work(per_drive)
                with sim.lock:
                    newg.conf = OrderedDict(sorted(newconf.items()))   # write_config
                    sim.changed()
            if not drives:
                task.work()
            task.injected_failure()
            with sim.lock:
                newconf.pop("lock", None)
                newg.conf = OrderedDict(sorted(newconf.items()))
                if target:
                    newg.node = target          # the config moves to the target node
                sim.changed()
        except (TaskError, ApiError) as e:
            # free the new volumes, remove the config: nothing half-made stays
            with sim.lock:
                if sim.guests.get(newid) is newg:
                    del sim.guests[newid]
                sim.changed()
            raise TaskError("clone failed: %s" % e)

    def _clone_drive(self, task, g, newg, opt, value, full, p, taken):
        """clone_disk: a linked clone (vdisk_clone) of a base volume, or a full copy to
        'storage' (or the source's storage); a cloud-init disk is always made anew."""
        sim = self.sim
        keys = qemu_drive_keys(opt)
        drive = parse_property_string(keys, value)
        volid = drive["file"]
        sid, _, volname = volid.partition(":")
        task.log("create %s clone of drive %s (%s)" % ("full" if full else "linked", opt, volid))
        if not full:
            st = sim.storage(g.node, sid)
            # <base volume>/<new volume>: base-9000-disk-0/vm-123-disk-0 (lvm-thin),
            # 9000/base-9000-disk-0.qcow2/123/vm-123-disk-0.qcow2 (a file storage)
            fmt = "qcow2" if st.kind in FILE_STORAGES else None
            own = sim.alloc_volume(newg, sid, g.node, fmt, taken)
            new = "%s:%s/%s" % (sid, volname, own.split(":", 1)[1])
        else:
            dst = p.get("storage") or sid
            st = sim.storage(g.node, dst)
            dst_fmt = None
            if st.kind in FILE_STORAGES:
                src_fmt = drive.get("format") or (volname.rsplit(".", 1)[-1]
                                                  if "." in volname else "raw")
                dst_fmt = p.get("format") or src_fmt
                if dst_fmt not in STORAGE_FORMATS[st.kind][0]:
                    task.log("format '%s' is not supported by the target storage '%s' - "
                             "using '%s' instead" % (dst_fmt, dst, STORAGE_FORMATS[st.kind][1]))
                    dst_fmt = STORAGE_FORMATS[st.kind][1]
            elif p.get("format") and p["format"] != "raw":
                task.log("format '%s' is not supported by the target storage '%s' - using "
                         "'raw' instead" % (p["format"], dst))
            new = sim.alloc_volume(newg, dst, g.node, dst_fmt, taken,
                                   cloudinit=is_cloudinit(value))
            task.log("allocated target volume '%s'" % new)
            if is_cloudinit(value):
                drive["size"] = "4M"
            elif not is_cdrom(value):
                task.log("transferred %s of %s (100.00%%)" % (
                    drive.get("size", "0"), drive.get("size", "0")))
        drive.pop("format", None)
        drive["file"] = new
        return print_property_string(keys, drive)

    def qemu_template(self, ctx, p):
        sim = self.sim
        disk = p.get("disk")

        def load_and_check():
            with sim.lock:
                g = sim.guest(p["node"], p["vmid"], "qemu")
                msg = g.lock_error()
                if msg:
                    die(msg)
                if g.snapshots:
                    die("unable to create template, because VM contains snapshots")
                if g.conf.get("template") and not disk:
                    die("you can't convert a template to a template")
                if g.status == "running":
                    die("you can't convert a VM to template if VM is running")
                return g

        g = load_and_check()

        def worker(task):
            with sim.locked(g):
                try:
                    g2 = load_and_check()
                except ApiError as e:
                    raise TaskError(e.message)
                if g2 is not g:
                    raise TaskError("Configuration file '%s' does not exist" % g.config_path())
                task.work()
                task.injected_failure()
                with sim.lock:
                    g.conf["template"] = 1
                    for key in sorted(g.conf):
                        if not QEMU_DRIVE_RE.match(key) or is_cdrom(g.conf[key]):
                            continue
                        if disk and key != disk:
                            continue
                        value = str(g.conf[key])
                        volid = value.split(",")[0]
                        base = volid.replace("vm-%d-disk-" % g.vmid, "base-%d-disk-" % g.vmid)
                        if base != volid:
                            task.log('  Renamed "%s" to "%s" in volume group "pve"' % (
                                volid.split(":", 1)[1].split("/")[-1],
                                base.split(":", 1)[1].split("/")[-1]))
                            g.conf[key] = base + value[len(volid):]
                    g.conf = OrderedDict(sorted(g.conf.items()))
                    sim.changed()
        return sim.spawn(g.node, "qmtemplate", g.vmid, ctx.user, worker).upid

    # --- QEMU resize (resize_vm): every check runs in the worker -------------------------
    def qemu_resize(self, ctx, p):
        sim = self.sim
        node, vmid, disk = p["node"], p["vmid"], p["disk"]
        user = ctx.user

        def worker(task):
            with sim.lock:
                g = sim.guests.get(vmid)
                if g is None or g.kind != "qemu" or g.node != node:
                    raise TaskError("Configuration file 'nodes/%s/qemu-server/%d.conf' does "
                                    "not exist" % (node, vmid))
            with sim.locked(g):
                with sim.lock:
                    if sim.guests.get(vmid) is not g:
                        raise TaskError("Configuration file '%s' does not exist"
                                        % g.config_path())
                    if p.get("digest") and p["digest"] != g.digest():
                        raise TaskError("checksum mismatch (file change by other user?)")
                    msg = None if p.get("skiplock") else g.lock_error()
                    if msg:
                        raise TaskError(msg)
                    if not g.conf.get(disk):
                        raise TaskError("disk '%s' does not exist" % disk)
                    keys = qemu_drive_keys(disk)
                    drive = parse_property_string(keys, g.conf[disk])
                    volid = drive["file"]
                    if volid == "none":
                        raise TaskError("disk '%s' has no associated volume" % disk)
                    if is_cdrom(g.conf[disk]):
                        raise TaskError("you can't resize a cdrom")
                    sid = volid.split(":", 1)[0]
                    sim.check(user, "/storage/%s" % sid, ["Datastore.AllocateSpace"])
                    size = parse_size(str(drive.get("size", "0"))) or 0
                    text = p["size"]
                    newsize = parse_size(text.lstrip("+"))
                    if text.startswith("+"):
                        newsize += size
                    newsize = int(newsize)
                    if newsize < size:
                        raise TaskError("shrinking disks is not supported")
                if newsize == size:
                    return                      # nothing to do: the task ends OK
                lv = volid.split(":", 1)[1].split("/")[-1]
                task.log("  Size of logical volume pve/%s changed from %s to %s." % (
                    lv, format_size(size), format_size(newsize)))
                task.log("  Logical volume pve/%s successfully resized." % lv)
                task.work()
                task.injected_failure()
                with sim.lock:
                    cur = parse_property_string(keys, g.conf[disk])
                    cur["size"] = format_size(newsize)
                    g.conf[disk] = print_property_string(keys, cur)
                    sim.changed()
        return sim.spawn(node, "resize", vmid, user, worker).upid

    # --- QEMU guest agent (API2/Qemu/Agent.pm) -------------------------------------------
    @staticmethod
    def _agent_enabled(g):
        """get_qga_key($conf, 'enabled')"""
        try:
            return bool(parse_property_string(QM_AGENT_KEYS, str(g.conf.get("agent", "0")))
                        .get("enabled"))
        except FormatError:
            return False

    def _assert_agent(self, g):
        """assert_agent_available: the 'agent' option set at all, the VM running, and
        the guest answering guest-ping (not with agent=0, nor paused, nor with the
        guest's agent stopped: /_sim/guest agent_running)."""
        if "agent" not in g.conf:
            die("No QEMU guest agent configured")
        if g.status != "running":
            die("VM %d is not running" % g.vmid)
        if not (self._agent_enabled(g) and g.agent_running and not g.paused):
            die("QEMU guest agent is not running")

    def qemu_agent_ping(self, ctx, p):
        with self.sim.lock:
            g = self.sim.guest(p["node"], p["vmid"], "qemu")
            self._assert_agent(g)
        return {"result": {}}

    def qemu_set_password(self, ctx, p):
        with self.sim.lock:
            g = self.sim.guest(p["node"], p["vmid"], "qemu")
            self._assert_agent(g)
            if p.get("crypted"):
                self.sim.record_password(g, p["username"], hashed=p["password"], source="agent")
            else:
                self.sim.record_password(g, p["username"], p["password"], source="agent")
        return {"result": {}}


# ==========================================================================
# The control API (/_sim/…): plain JSON, no authentication (127.0.0.1 only).

# ==========================================================================
# Consoles: what listens behind the ports vncproxy and termproxy hand out.
#
# Nothing binds 5900-5999 here: GET …/vncwebsocket (Handler.websocket_session) finds
# the port's session in Sim.console_ports and runs it on the upgraded connection, as
# pveproxy's websocket_proxy would relay it to localhost:<port>.  Each proxy takes one
# connection (termproxy, vncterm and qemu-server's vncproxy accept once).

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_MAX_PAYLOAD = 128 * 1024         # pve-http-server's $max_payload_size, both directions
VNC_PASSWORD_EXPIRY = 30            # qm vncproxy: expire_password "+30"
FB_WIDTH, FB_HEIGHT = 64, 48
RFB_AUTH_FAILED = b"Authentication failed\0"   # QEMU sends sizeof(err): with the NUL
# the colour bars of the framebuffer (white, yellow, cyan, green, magenta, red, blue, black)
FB_BARS = ((255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0),
           (255, 0, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0))


class SessionEnd(Exception):
    """The console ends; message, if any, becomes the task's exit status."""

    def __init__(self, message=None, reason="error"):
        super().__init__(message or "")
        self.message = message
        self.reason = reason


class WsConn:
    """The server side of one upgraded connection, as pve-http-server's
    websocket_proxy speaks it: client frames must be masked, unfragmented, without
    RSV bits and at most 128 KiB; text (1) and binary (2) frames both carry data; a
    ping gets a pong with its payload; a close frame ends the session without a close
    frame in return; any other opcode drops the connection.  Data goes out as binary
    frames of at most 128 KiB.  All reads and writes happen in the handler's thread;
    drop() only shuts the socket down, which wakes the reader."""

    def __init__(self, handler, session):
        self.rfile = handler.rfile
        self.sock = handler.connection
        self.session = session

    def _read(self, n):
        data = self.rfile.read(n)
        if data is None or len(data) < n:
            raise SessionEnd(reason="client disconnected")
        return data

    def recv(self):
        """The payload of the next data frame.  Raises SessionEnd when the
        connection ends (EOF, a close frame, a protocol error, a drop)."""
        s = self.session
        while True:
            if s.dropped:
                raise SessionEnd(reason="dropped")
            delay = s.sim.console_read_delay
            if delay > 0:
                time.sleep(delay)
            try:
                hdr = self._read(2)
                fin, rsv, op = hdr[0] & 0x80, hdr[0] & 0x70, hdr[0] & 0x0F
                if not fin:
                    raise SessionEnd(reason="received fragmented websocket frame")
                if rsv:
                    raise SessionEnd(reason="received websocket frame with RSV flags")
                if not hdr[1] & 0x80:
                    raise SessionEnd(reason="received unmasked websocket frame from client")
                length = hdr[1] & 0x7F
                if length == 126:
                    length = struct.unpack(">H", self._read(2))[0]
                elif length == 127:
                    length = struct.unpack(">Q", self._read(8))[0]
                if length > WS_MAX_PAYLOAD:
                    raise SessionEnd(reason="received too large websocket frame (len = %d)"
                                     % length)
                mask = self._read(4)
                payload = self._read(length) if length else b""
            except (OSError, ValueError, ssl.SSLError) as e:
                raise SessionEnd(reason="dropped" if s.dropped else "read error: %s" % e)
            if length and mask != b"\0\0\0\0":
                key = (mask * (length // 4 + 1))[:length]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")) \
                    .to_bytes(length, "big")
            with s.sim.lock:
                s.frames_in += 1
            if op in (1, 2):
                with s.sim.lock:
                    s.bytes_in += len(payload)
                return payload
            if op == 8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                raise SessionEnd(reason="client close (%s)" % code)
            if op == 9:
                self.send(payload, opcode=0x8A)
                continue
            if op == 0xA:
                continue
            raise SessionEnd(reason="received unhandled websocket opcode %d" % op)

    def send(self, data, opcode=0x82):
        s = self.session
        if s.dropped:
            raise SessionEnd(reason="dropped")
        chunks = [data[i:i + WS_MAX_PAYLOAD] for i in range(0, len(data), WS_MAX_PAYLOAD)] \
            or [b""]
        try:
            for chunk in chunks:
                n = len(chunk)
                if n <= 125:
                    head = struct.pack(">BB", opcode, n)
                elif n <= 0xFFFF:
                    head = struct.pack(">BBH", opcode, 126, n)
                else:
                    head = struct.pack(">BBQ", opcode, 127, n)
                self.sock.sendall(head + chunk)
                with s.sim.lock:
                    s.frames_out += 1
                    if opcode == 0x82:
                        s.bytes_out += n
        except (OSError, ValueError, ssl.SSLError) as e:
            raise SessionEnd(reason="dropped" if s.dropped else "write error: %s" % e)


class StreamReader:
    """Reads a byte stream (RFB) out of WebSocket data frames."""

    def __init__(self, ws):
        self.ws = ws
        self.buf = bytearray()

    def read(self, n):
        while len(self.buf) < n:
            self.buf += self.ws.recv()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class LineShell:
    """A tiny line shell behind termproxy: a tty's echo, backspace, ^C, ^U and ^D,
    and the commands echo, hostname, whoami, exit/logout."""

    def __init__(self, session, hostname, user="root"):
        self.session = session
        self.hostname = hostname
        self.user = user
        self.prompt = ("%s@%s:~# " % (user, hostname)).encode()
        self.line = bytearray()
        self.skip_lf = False
        self.escape = 0         # 1: after ESC, 2: inside a CSI/SS3 sequence
        self.done = False

    def feed(self, data):
        out = bytearray()
        for b in data:
            if self.done:
                break
            if self.escape:
                if self.escape == 1 and b in (0x5B, 0x4F):      # ESC [ or ESC O
                    self.escape = 2
                elif self.escape == 2 and not 0x40 <= b <= 0x7E:
                    pass
                else:
                    self.escape = 0
                continue
            if self.skip_lf and b == 10:
                self.skip_lf = False
                continue
            self.skip_lf = False
            if b in (10, 13):
                out += b"\r\n"
                out += self.run(self.line.decode("utf-8", "replace"))
                self.line.clear()
                self.skip_lf = b == 13
                if not self.done:
                    out += self.prompt
            elif b in (8, 127):
                if self.line:
                    while self.line and self.line[-1] & 0xC0 == 0x80:
                        self.line.pop()
                    if self.line:
                        self.line.pop()
                    out += b"\b \b"
            elif b == 3:                                        # ^C
                out += b"^C\r\n" + self.prompt
                self.line.clear()
            elif b == 4:                                        # ^D on an empty line
                if not self.line:
                    out += b"logout\r\n"
                    self.done = True
            elif b == 21:                                       # ^U
                out += b"\b \b" * len(self.line.decode("utf-8", "replace"))
                self.line.clear()
            elif b == 27:
                self.escape = 1
            elif b >= 32 or b == 9:
                self.line.append(b)
                out.append(b)
        return bytes(out)

    def run(self, text):
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        if not words:
            return b""
        with self.session.sim.lock:
            self.session.commands.append(text.strip())
            del self.session.commands[:-100]
        cmd, args = words[0], words[1:]
        if cmd == "echo":
            out = " ".join(args)
        elif cmd == "hostname":
            out = self.hostname
        elif cmd == "whoami":
            out = self.user
        elif cmd in ("exit", "logout"):
            self.done = True
            out = "logout"
        else:
            out = "-bash: %s: command not found" % cmd
        return (out + "\r\n").encode()


def rfb_pixel(rgb, pf):
    """One pixel in the client's pixel format (true colour)."""
    bpp, _depth, big, _tc, rmax, gmax, bmax, rs, gs, bs = pf
    r, g, b = rgb
    v = ((r * rmax // 255) << rs) | ((g * gmax // 255) << gs) | ((b * bmax // 255) << bs)
    return (v & ((1 << bpp) - 1)).to_bytes(bpp // 8, "big" if big else "little")


def framebuffer_rgb(x, y, version, width=FB_WIDTH, height=FB_HEIGHT):
    """The simulated screen: colour bars over a grey ramp, and a 6x6 marker that
    moves with every key press or click (version)."""
    mx = (version * 6) % max(1, width - 6)
    if mx <= x < mx + 6 and height - 8 <= y < height - 2:
        return (255, 128, 0)
    if y < height * 2 // 3:
        return FB_BARS[x * len(FB_BARS) // width]
    v = x * 255 // max(1, width - 1)
    return (v, v, v)


class ConsoleSession:
    """The proxy behind one vncproxy/termproxy port: waits for its one connection,
    then runs termproxy's protocol (kind "term") or an RFB 3.8 server (kind "vnc")."""

    def __init__(self, sim, kind, guest, port, user, ticket, password, websocket=False,
                 serial=None):
        self.sim = sim
        self.kind = kind
        self.vmid = guest.vmid
        self.type = guest.kind
        self.node = guest.node
        self.port = port
        self.user = user
        self.ticket = ticket            # the bare PVEVNC ticket (termproxy pins it)
        self.password = password        # the VNC password (vncproxy)
        self.websocket = websocket
        self.serial = serial
        self.task = None
        self.upid = None
        self.state = "waiting"          # connected, closed
        self.created = now()
        self.connected_at = None
        self.closed_at = None
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.dropped = None             # "close" or "reset" after drop()
        self.sock = None
        self.error = None               # the task's exit status if the proxy failed
        self.end_reason = None
        self.authenticated = False
        self.auth_failures = 0
        self.bytes_in = self.bytes_out = self.frames_in = self.frames_out = 0
        self.cols, self.rows = 80, 20   # termproxy's pty starts at 80x20
        self.pings = 0
        self.resizes = 0
        self.commands = []
        self.keys = []
        self.pointer = None
        self.cut_text = []
        self.updates = 0
        self.encodings = []
        self.pixel_format = None
        self.client_version = None
        self.fb_version = 0

    def info(self):
        d = {"port": self.port, "kind": self.kind, "vmid": self.vmid, "type": self.type,
             "node": self.node, "user": self.user, "upid": self.upid, "state": self.state,
             "open": self.state != "closed", "created": self.created,
             "connected_at": self.connected_at, "closed_at": self.closed_at,
             "websocket": self.websocket, "authenticated": self.authenticated,
             "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
             "frames_in": self.frames_in, "frames_out": self.frames_out,
             "end_reason": self.end_reason, "error": self.error,
             "dropped": self.dropped}
        if self.kind == "term":
            d.update(cols=self.cols, rows=self.rows, pings=self.pings, resizes=self.resizes,
                     commands=list(self.commands))
        else:
            d.update(auth_failures=self.auth_failures, client_version=self.client_version,
                     width=FB_WIDTH, height=FB_HEIGHT, updates=self.updates,
                     encodings=list(self.encodings), pixel_format=self.pixel_format,
                     keys=list(self.keys), pointer=self.pointer, cut_text=list(self.cut_text),
                     has_password=self.password is not None)
        return d

    # --- the task ---------------------------------------------------------------
    def worker(self, task):
        sim = self.sim
        try:
            # vncterm (an LXC vncproxy) waits twice its -timeout 10 for the first client
            # and then just exits (0)
            vncterm = self.kind == "vnc" and self.type == "lxc"
            deadline = time.monotonic() + sim.console_timeout * (2 if vncterm else 1)
            while not self.connected.is_set():
                if self.closed.is_set():
                    raise TaskError("received interrupt")       # dropped while waiting
                left = deadline - time.monotonic()
                if left <= 0:
                    with sim.lock:
                        timed_out = self.state == "waiting"
                        if timed_out:
                            self.state = "closed"
                            self.closed_at = now()
                            self.end_reason = "timeout"
                            self.closed.set()
                    if timed_out and vncterm:
                        return
                    if timed_out:
                        # termproxy: "failed waiting for client: timed out"; qemu-server's
                        # vncproxy: its alarm's "connection timed out"
                        raise TaskError("failed waiting for client: timed out"
                                        if self.kind == "term" else "connection timed out")
                    continue
                if task.abort.wait(min(left, 0.2)):
                    self.drop()
                    raise TaskError("received interrupt")
            if self.kind == "term":
                task.log("client connection: 127.0.0.1:%d" % (self.client_port or 0))
            while not self.closed.wait(0.2):
                if task.abort.is_set():
                    self.drop()
                    self.closed.wait(5)
                    raise TaskError("received interrupt")
            if self.error:
                raise TaskError(self.error)
        finally:
            with sim.lock:
                if self.state != "closed":
                    self.state = "closed"
                    self.closed_at = now()
                if sim.console_ports.get((self.node, self.port)) is self:
                    del sim.console_ports[(self.node, self.port)]
                if self not in sim.console_history:
                    sim.console_history.append(self)
                    del sim.console_history[:-100]

    client_port = None

    def claim(self, sock, client_port):
        """The proxy accepts the connection (once).  False if it is not waiting."""
        with self.sim.lock:
            if self.state != "waiting" or self.dropped:
                return False
            self.state = "connected"
            self.connected_at = now()
            self.sock = sock
            self.client_port = client_port
            self.connected.set()
            return True

    def drop(self, mode="close"):
        """End the session from the server side: the socket is shut down with no
        WebSocket close frame, as pveproxy drops the client when its backend goes."""
        with self.sim.lock:
            if self.dropped:
                return
            self.dropped = mode
            sock = self.sock
            if self.state == "waiting":
                self.state = "closed"
                self.closed_at = now()
                self.end_reason = "dropped"
                self.closed.set()
        if sock is not None:
            try:
                if mode == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                    socket.socket.shutdown(sock, socket.SHUT_RD)
                else:
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    # --- the connection -----------------------------------------------------------
    def run(self, ws):
        """Serve the claimed connection until it ends (in the handler's thread)."""
        sim = self.sim
        try:
            if self.kind == "term":
                self._serve_term(ws)
            else:
                self._serve_vnc(ws)
            reason, error = "server closed", None
        except SessionEnd as e:
            reason, error = e.reason, e.message
        except Exception as e:          # a bug in the simulator: show it
            traceback.print_exc()
            reason, error = "internal error", "internal error: %s" % e
        with sim.lock:
            self.state = "closed"
            self.closed_at = now()
            self.end_reason = "dropped" if self.dropped else reason
            if error and not self.error:
                self.error = error
            self.closed.set()

    def _guest(self):
        with self.sim.lock:
            g = self.sim.guests.get(self.vmid)
            if g is None or g.kind != self.type:
                return None, False, None
            if self.type == "lxc":
                host = g.conf.get("hostname") or "CT%d" % self.vmid
            else:
                host = g.conf.get("name") or "vm%d" % self.vmid
            return g, g.status == "running", host

    # --- termproxy ------------------------------------------------------------------
    def _ticket_timeout(self, ws):
        if not self.authenticated and self.state == "connected":
            with self.sim.lock:
                self.error = self.error or "failed reading ticket: timed out"
            self.drop()

    def _serve_term(self, ws):
        timer = threading.Timer(self.sim.console_timeout, self._ticket_timeout, (ws,))
        timer.daemon = True
        timer.start()
        buf = bytearray()
        try:
            while b"\n" not in buf:
                try:
                    buf += ws.recv()
                except SessionEnd as e:
                    if self.error:
                        raise
                    raise SessionEnd("failed reading ticket: connection closed before "
                                     "authentication", e.reason)
                if len(buf) > 4096:
                    raise SessionEnd("failed reading ticket: authentication data is "
                                     "incomplete", "bad ticket line")
        finally:
            timer.cancel()
        line, _, rest = bytes(buf).partition(b"\n")
        if b":" not in line:
            raise SessionEnd("failed reading ticket: authentication data is invalid",
                             "bad ticket line")
        authid, _, ticket = line.partition(b":")
        authid = authid.decode("utf-8", "replace")
        ticket = ticket.decode("utf-8", "replace")
        with self.sim.lock:
            ok = ticket == self.ticket and self.sim.vncticket_ok(
                authid, ticket, "/vms/%d" % self.vmid, "VM.Console", self.port)
        if not ok:
            raise SessionEnd("authentication request failed", "ticket refused")
        self.authenticated = True
        ws.send(b"OK")
        g, running, host = self._guest()
        if not running:
            # the console command fails at once; termproxy ends with the pty
            text = ("lxc-console: %d is not running\r\n" % self.vmid if self.type == "lxc"
                    else "VM %d not running\r\n" % self.vmid)
            ws.send(text.encode())
            raise SessionEnd(reason="guest not running")
        shell = LineShell(self, host)
        ws.send(shell.prompt)
        buf = bytearray(rest)
        while True:
            out = bytearray()
            for ev in self._term_messages(buf):
                if ev[0] == "data":
                    out += shell.feed(ev[1])
                elif ev[0] == "resize":
                    with self.sim.lock:
                        self.cols, self.rows = ev[1], ev[2]
                        self.resizes += 1
                else:
                    with self.sim.lock:
                        self.pings += 1
                if shell.done:
                    break
            if out:
                ws.send(bytes(out))
            if shell.done:
                raise SessionEnd(reason="shell exited")
            buf += ws.recv()

    @staticmethod
    def _term_messages(buf):
        """termproxy's messages: "0:LEN:DATA" (input, LEN bytes), "1:COLS:ROWS:"
        (resize), "2" (ping); anything else is skipped a byte at a time.  Consumes the
        complete messages from buf."""
        events = []
        while buf:
            t = buf[0]
            if t not in (0x30, 0x31):
                if t == 0x32:
                    events.append(("ping",))
                del buf[:1]
                continue
            if len(buf) < 2:
                break
            if buf[1] != 0x3A:
                del buf[:1]
                continue
            pos, nums, state = 2, [], "ok"
            for _ in range(1 if t == 0x30 else 2):
                c = buf.find(b":", pos)
                if c < 0:
                    state = "short" if len(buf) - pos <= 20 else "bad"
                    break
                text = bytes(buf[pos:c])
                if not text.isdigit():
                    state = "bad"
                    break
                nums.append(int(text))
                pos = c + 1
            if state == "short":
                break
            if state == "bad":
                del buf[:2]
                continue
            if t == 0x30:
                if len(buf) - pos < nums[0]:
                    break
                events.append(("data", bytes(buf[pos:pos + nums[0]])))
                del buf[:pos + nums[0]]
            else:
                events.append(("resize", nums[0], nums[1]))
                del buf[:pos]
        return events

    # --- VNC (RFB 3.8, as QEMU's VNC server answers behind qm vncproxy) ------------------
    def _serve_vnc(self, ws):
        g, running, host = self._guest()
        if self.type == "qemu" and not running:
            # qm vncproxy fails (no QEMU to talk to) and the connection closes at once
            raise SessionEnd("Failed to run vncproxy.", "guest not running")
        if self.password is None:
            raise SessionEnd("vncproxy without websocket=1 (VeNCrypt/TLS) is not simulated",
                             "not simulated")
        rd = StreamReader(ws)
        ws.send(b"RFB 003.008\n")
        version = rd.read(12)
        m = re.fullmatch(rb"RFB (\d{3})\.(\d{3})\n", version)
        minor = int(m.group(2)) if m and int(m.group(1)) == 3 else None
        if minor in (4, 5):
            minor = 3
        with self.sim.lock:
            self.client_version = version.decode("latin-1").strip()
        if minor not in (3, 7, 8):
            ws.send(struct.pack(">I", 0))
            raise SessionEnd(reason="unsupported client version")
        if minor == 3:
            ws.send(struct.pack(">I", 2))
        else:
            ws.send(b"\x01\x02")
            if rd.read(1) != b"\x02":
                self._auth_reject(ws, minor)
        challenge = secrets.token_bytes(16)
        ws.send(challenge)
        answer = rd.read(16)
        expired = now() - (self.connected_at or now()) > VNC_PASSWORD_EXPIRY
        if expired or not hmac.compare_digest(answer,
                                              vncdes.vnc_response(self.password, challenge)):
            self._auth_reject(ws, minor)
        ws.send(struct.pack(">I", 0))
        self.authenticated = True
        rd.read(1)                      # ClientInit: shared flag
        pf = (32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
        # QEMU: "QEMU (<-name>)"; vncterm (LXC): its desktopName
        name = ("QEMU (%s)" % host if self.type == "qemu" else "VNC Command Terminal").encode()
        ws.send(struct.pack(">HHBBBBHHHBBB3xI", FB_WIDTH, FB_HEIGHT, *pf, len(name)) + name)
        with self.sim.lock:
            self.pixel_format = list(pf)
        sent = None                     # fb_version of the last update sent
        pending = None
        while True:
            t = rd.read(1)[0]
            if t == 0:                  # SetPixelFormat
                f = struct.unpack(">3xBBBBHHHBBB3x", rd.read(19))
                if f[0] not in (8, 16, 32) or not f[3]:
                    raise SessionEnd(reason="unsupported pixel format %r" % (f,))
                pf = f
                with self.sim.lock:
                    self.pixel_format = list(pf)
                sent = None
            elif t == 2:                # SetEncodings
                n = struct.unpack(">xH", rd.read(3))[0]
                encs = list(struct.unpack(">%di" % n, rd.read(4 * n))) if n else []
                with self.sim.lock:
                    self.encodings = encs
            elif t == 3:                # FramebufferUpdateRequest
                inc, x, y, w, h = struct.unpack(">BHHHH", rd.read(9))
                if not inc or sent != self.fb_version:
                    self._send_update(ws, pf, x, y, w, h, full=bool(inc))
                    sent = self.fb_version
                    pending = None
                else:
                    pending = (x, y, w, h)     # answered at the next change
            elif t == 4:                # KeyEvent
                down, key = struct.unpack(">B2xI", rd.read(7))
                with self.sim.lock:
                    self.keys.append([key, down])
                    del self.keys[:-200]
                    if down:
                        self.fb_version += 1
            elif t == 5:                # PointerEvent
                mask, x, y = struct.unpack(">BHH", rd.read(5))
                with self.sim.lock:
                    self.pointer = [x, y, mask]
                    if mask:
                        self.fb_version += 1
            elif t == 6:                # ClientCutText
                n = struct.unpack(">3xI", rd.read(7))[0]
                text = rd.read(n)
                with self.sim.lock:
                    self.cut_text.append(text.decode("latin-1"))
                    del self.cut_text[:-20]
            else:
                raise SessionEnd(reason="unknown RFB message type %d" % t)
            if pending is not None and sent != self.fb_version:
                self._send_update(ws, pf, *pending, full=True)
                sent = self.fb_version
                pending = None

    def _auth_reject(self, ws, minor):
        with self.sim.lock:
            self.auth_failures += 1
        out = struct.pack(">I", 1)
        if minor >= 8:
            out += struct.pack(">I", len(RFB_AUTH_FAILED)) + RFB_AUTH_FAILED
        ws.send(out)
        raise SessionEnd(reason="authentication failed")

    def _send_update(self, ws, pf, x, y, w, h, full=False):
        """A FramebufferUpdate with one Raw rectangle: the requested one, clipped to
        the screen (the whole screen for a change or an empty request)."""
        x2, y2 = min(x + w, FB_WIDTH), min(y + h, FB_HEIGHT)
        if full or x >= x2 or y >= y2:
            x, y, x2, y2 = 0, 0, FB_WIDTH, FB_HEIGHT
        version = self.fb_version
        cache = {}
        rows = []
        for yy in range(y, y2):
            row = bytearray()
            for xx in range(x, x2):
                rgb = framebuffer_rgb(xx, yy, version)
                px = cache.get(rgb)
                if px is None:
                    px = cache[rgb] = rfb_pixel(rgb, pf)
                row += px
            rows.append(bytes(row))
        ws.send(struct.pack(">BxH", 0, 1) + struct.pack(">HHHHi", x, y, x2 - x, y2 - y, 0)
                + b"".join(rows))
        with self.sim.lock:
            self.updates += 1


class Control:
    def __init__(self, sim):
        self.sim = sim

    def dispatch(self, method, path, query, body):
        """Returns (status, object)."""
        parts = [urllib.parse.unquote(x) for x in path.strip("/").split("/")[1:]]
        try:
            data = json.loads(body or b"{}") if body else {}
        except ValueError:
            return 400, {"error": "body is not JSON"}
        if not isinstance(data, dict):
            return 400, {"error": "body must be a JSON object"}
        try:
            if parts == ["state"] and method == "GET":
                return 200, self.state(query)
            if parts == ["tasks"] and method == "GET":
                return 200, self.tasks(query)
            if parts == ["fault"] and method == "POST" or parts == ["faults"] and method == "POST":
                return 200, self.sim.add_fault(data)
            if parts == ["faults"] and method == "GET":
                with self.sim.lock:
                    return 200, [dict(f) for f in self.sim.faults]
            if parts == ["faults"] and method == "DELETE":
                return 200, self.sim.add_fault({"kind": "clear"})
            if parts == ["guest"] and method == "POST":
                return 200, self.guest_set(data)
            if len(parts) == 2 and parts[0] == "guest" and parts[1].isdigit():
                vmid = int(parts[1])
                if method == "GET":
                    return self.guest_get(vmid)
                if method in ("POST", "PUT"):
                    return 200, self.guest_set(dict(data, vmid=vmid))
                if method == "DELETE":
                    with self.sim.lock:
                        g = self.sim.guests.pop(vmid, None)
                        self.sim.changed()
                    return (200, {"deleted": vmid}) if g else (404, {"error": "no such guest"})
            if len(parts) == 3 and parts[0] == "guest" and parts[2] == "password" \
                    and method == "POST":
                return self.guest_password(int(parts[1]), data)
            if parts == ["template"] and method in ("POST", "PUT"):
                return self.template_add(data)
            if parts == ["storage"] and method in ("POST", "PUT"):
                return self.storage_add(data)
            if len(parts) == 2 and parts[0] == "storage" and method == "DELETE":
                return self.storage_remove(parts[1])
            if parts == ["node"] and method == "POST":
                return self.node_set(data)
            if len(parts) == 2 and parts[0] == "node" and method in ("POST", "PUT"):
                return self.node_set(dict(data, node=parts[1]))
            if len(parts) == 2 and parts[0] == "node" and method == "GET":
                with self.sim.lock:
                    node = self.sim.nodes.get(parts[1])
                    if node is None:
                        return 404, {"error": "no such node"}
                    return 200, self.node_info(node)
            if parts == ["templates"] and method == "GET":
                return self.templates_get(query)
            if parts == ["templates"] and method in ("POST", "PUT"):
                return self.templates_set(data)
            if parts == ["refresh"] and method == "POST":
                self.sim.refresh_resources()
                return 200, {"refreshed": self.sim.snap_time}
            if parts == ["reset"] and method == "POST":
                self.sim.reset(data.get("guests"), data.get("qemu_guests"))
                return 200, {"reset": True, "guests": len(self.sim.guests)}
            if parts == ["token-privs"] and method == "GET":
                return 200, self.token_privs_get()
            if parts == ["token-privs"] and method in ("POST", "PUT"):
                return self.token_privs_set(data)
            if parts == ["console"] and method == "GET":
                return 200, self.console_state()
            if parts == ["console"] and method in ("POST", "PUT"):
                return 200, self.console_config(data)
            if len(parts) >= 2 and parts[0] == "console" and parts[1].isdigit():
                port = int(parts[1])
                if len(parts) == 2 and method == "GET":
                    return self.console_get(port)
                if len(parts) == 2 and method == "DELETE" or \
                        parts[2:] == ["drop"] and method == "POST":
                    return self.console_drop(port, data.get("mode", "close"))
            if parts == ["config"] and method in ("POST", "PUT"):
                return 200, self.config(data)
            if parts == ["config"] and method == "GET":
                return 200, self.config({})
        except (ValueError, KeyError, TypeError) as e:
            return 400, {"error": "%s: %s" % (type(e).__name__, e)}
        except ApiError as e:
            return 400, {"error": e.message}
        return 404, {"error": "unknown control endpoint %s %s" % (method, path)}

    # --- consoles -------------------------------------------------------------------
    def _console_sessions(self):
        sim = self.sim
        seen = [x for x in sim.console_ports.values() if x is not None]
        return seen + [x for x in sim.console_history if x not in seen]

    def console_settings(self):
        sim = self.sim
        return {"timeout": sim.console_timeout, "ticket_lifetime": sim.vnc_ticket_lifetime,
                "read_delay": sim.console_read_delay}

    def console_state(self):
        """{"sessions": [open ones], "closed": [ended ones, newest last], settings}"""
        with self.sim.lock:
            all_ = self._console_sessions()
            d = self.console_settings()
            d["sessions"] = [x.info() for x in all_ if x.state != "closed"]
            d["closed"] = [x.info() for x in sorted(
                (x for x in all_ if x.state == "closed"),
                key=lambda x: (x.closed_at or 0, x.created))]
            return d

    def console_config(self, data):
        sim = self.sim
        for key, attr in (("timeout", "console_timeout"),
                          ("ticket_lifetime", "vnc_ticket_lifetime"),
                          ("read_delay", "console_read_delay")):
            if key in data:
                value = float(data[key])
                if value < 0:
                    raise ValueError("%s must not be negative" % key)
                setattr(sim, attr, value)
        with sim.lock:
            return self.console_settings()

    def console_get(self, port):
        """The newest session on the port (open or ended)."""
        with self.sim.lock:
            found = [x for x in self._console_sessions() if x.port == port]
            if not found:
                return 404, {"error": "no console session on port %d" % port}
            return 200, max(found, key=lambda x: (x.state != "closed", x.created)).info()

    def console_drop(self, port, mode):
        if mode not in ("close", "reset"):
            return 400, {"error": "mode must be close or reset"}
        with self.sim.lock:
            session = next((x for (_, n), x in self.sim.console_ports.items()
                            if n == port and x is not None and x.state != "closed"), None)
            if session is None:
                return 404, {"error": "no open console session on port %d" % port}
        session.drop(mode)
        session.closed.wait(5)
        with self.sim.lock:
            return 200, dict(session.info(), dropped=mode)

    def token_privs_get(self):
        """{tokenid: [privileges on "/"] or None (every privilege)}"""
        sim = self.sim
        return {t: sorted(sim.token_privs[t]) if t in sim.token_privs else None
                for t in sim.tokens}

    def token_privs_set(self, data):
        """{"tokenid": "user@realm!id", "privs": [...]}: the token's privileges on "/"
        (propagated); "privs": null gives it every privilege again."""
        sim = self.sim
        tokenid = data.get("tokenid") or next(iter(sim.tokens))
        if tokenid not in sim.tokens:
            return 404, {"error": "no such token %r" % tokenid}
        privs = data.get("privs")
        if isinstance(privs, str):
            privs = [x for x in re.split(r"[,;\s]+", privs) if x]
        if privs is not None:
            if not isinstance(privs, list):
                return 400, {"error": "privs must be a list of privilege names or null"}
            bad = [x for x in privs if x not in ALL_PRIVS]
            if bad:
                return 400, {"error": "invalid privilege '%s'" % bad[0]}
        with sim.lock:
            if privs is None:
                sim.token_privs.pop(tokenid, None)
            else:
                sim.token_privs[tokenid] = frozenset(privs)
        return 200, {"tokenid": tokenid, "privs": sorted(privs) if privs is not None else None}

    def config(self, data):
        sim = self.sim
        for key in ("time_scale", "resources_lag", "auth_fail_delay", "lock_timeout"):
            if key in data:
                setattr(sim, key, float(data[key]))
        if "resources_lag" in data:
            sim.res_wake.set()
        return {k: getattr(sim, k) for k in ("time_scale", "resources_lag",
                                             "auth_fail_delay", "lock_timeout")}

    def guest_info(self, g, full=False):
        node = self.sim.nodes[g.node]
        d = {"vmid": g.vmid, "type": g.kind, "node": g.node, "name": g.name(),
             "status": g.status, "lock": g.conf.get("lock"), "paused": g.paused,
             "stats": g.stats(node.cpus)}
        if full:
            d.update(conf=dict(g.conf), pending=dict(g.pending),
                     pending_delete=sorted(g.pending_delete),
                     snapshots={k: {kk: vv for kk, vv in v.items() if kk != "conf"}
                                for k, v in g.snapshots.items()},
                     passwords=g.passwords, ssh_public_keys=g.ssh_keys,
                     ip=guest_ipv4(g.vmid) if g.status == "running" else None,
                     shutdown_hangs=g.shutdown_hangs, agent_running=g.agent_running,
                     digest=g.digest(), flock=g.flock.held())
            if g.kind == "qemu":
                # "config": what a start would write to the cloud-init drive now;
                # "applied": what the last start wrote (and the guest applied)
                d["cloudinit"] = {"config": self.sim.cloudinit_data(g, g.effective_conf()),
                                  "applied": g.cloudinit}
        return d

    def state(self, query):
        sim = self.sim
        q = dict(urllib.parse.parse_qsl(query))
        with sim.lock:
            d = {"time_scale": sim.time_scale, "resources_lag": sim.resources_lag,
                 "resources_age": round(now() - sim.snap_time, 3),
                 "cluster_name": sim.cluster_name,
                 "nodes": [{"node": n.name, "online": n.online, "cpus": n.cpus,
                            "memory": n.memory, "templates": n.templates()}
                           for n in sim.nodes.values()],
                 "locks": {str(v): g.conf["lock"] for v, g in sim.guests.items()
                           if g.conf.get("lock")},
                 "faults": [dict(f) for f in sim.faults],
                 "requests": dict(sim.requests),
                 "requests_by_path": dict(sim.requests_by_path),
                 "guest_count": len(sim.guests)}
            vmid = int(q["vmid"]) if q.get("vmid") else None
            if q.get("guests", "1") != "0":
                d["guests"] = [self.guest_info(g, full=vmid is not None)
                               for v, g in sorted(sim.guests.items())
                               if vmid is None or v == vmid]
            if q.get("tasks", "1") != "0":
                d["tasks"] = [dict(t.info(), log=t.lines) if vmid is not None else t.info()
                              for t in sim.tasks.values() if vmid is None or t.vmid == vmid]
        return d

    def tasks(self, query):
        q = dict(urllib.parse.parse_qsl(query))
        with self.sim.lock:
            return [dict(t.info(), log=list(t.lines)) for t in self.sim.tasks.values()
                    if not q.get("vmid") or t.vmid == int(q["vmid"])]

    def guest_get(self, vmid):
        with self.sim.lock:
            g = self.sim.guests.get(vmid)
            if g is None:
                return 404, {"error": "no such guest"}
            return 200, self.guest_info(g, full=True)

    def guest_set(self, data):
        """Create or modify a guest directly (status, usage, config, flags)."""
        sim = self.sim
        vmid = int(data["vmid"])
        with sim.lock:
            g = sim.guests.get(vmid)
            if g is None:
                node = data.get("node", sim.node_names[0])
                if node not in sim.nodes:
                    raise ValueError("unknown node %r" % node)
                if data.get("type", "lxc") == "qemu":
                    g = sim.make_qemu(vmid, node, data.get("name", "vm%d" % vmid),
                                      int(data.get("cores", 2)), int(data.get("memory", 2048)),
                                      int(data.get("disk_gb", 32)))
                else:
                    g = sim.make_lxc(vmid, node, {
                        "hostname": data.get("hostname", "ct%d" % vmid),
                        "cores": int(data.get("cores", 1)),
                        "memory": int(data.get("memory", 512)),
                        "swap": int(data.get("swap", 512)),
                        "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
                        "rootfs": "local-lvm:%s" % data.get("disk_gb", 8)},
                        "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")
                sim.guests[vmid] = g
            elif "node" in data and data["node"] != g.node:
                if data["node"] not in sim.nodes:
                    raise ValueError("unknown node %r" % data["node"])
                g.node = data["node"]
            for key in ("hostname", "name", "cores", "memory", "swap", "tags", "protection",
                        "template", "onboot", "description"):
                if key not in data:
                    continue
                value = data[key]
                if key == "name" and g.kind == "lxc":
                    key = "hostname"
                elif key == "hostname" and g.kind == "qemu":
                    key = "name"
                if key == "memory" and g.kind == "qemu":
                    value = str(value)
                g.conf[key] = value
            for key, value in (data.get("conf") or {}).items():
                if value is None:
                    g.conf.pop(key, None)
                else:
                    g.conf[key] = value
            if "lock" in data:
                if data["lock"]:
                    g.conf["lock"] = data["lock"]
                else:
                    g.conf.pop("lock", None)
            if "status" in data:
                if data["status"] == "running" and g.status != "running":
                    sim.set_running(g)
                elif data["status"] == "stopped" and g.status != "stopped":
                    sim.set_stopped(g)
                elif data["status"] not in ("running", "stopped"):
                    raise ValueError("status must be running or stopped")
            if "uptime" in data and g.status == "running":
                g.started = now() - float(data["uptime"])
            usage = False
            for key, attr in (("cpu", "cpu_override"), ("mem", "mem_override"),
                              ("disk", "disk_override")):
                if key in data:
                    setattr(g, attr, None if data[key] is None else
                            (float(data[key]) if key == "cpu" else int(data[key])))
                    usage = True
            if usage:
                g.usage_changed = now()
            for key in ("shutdown_hangs", "agent_running", "paused"):
                if key in data:
                    setattr(g, key, bool(data[key]))
            g.conf = OrderedDict(sorted(g.conf.items()))
            sim.changed()
            return self.guest_info(g, full=True)

    def template_add(self, data):
        """{"vmid": 9000, "name": "debian-12-cloud", "node": "pve1", "disk_gb": 4,
        "storage": "local-lvm", "cores": 2, "memory": 2048, "bridge": "vmbr0"}: a stopped
        cloud-init template VM (see Sim.make_qemu_template)."""
        sim = self.sim
        if "vmid" not in data or "name" not in data:
            return 400, {"error": "vmid and name are required"}
        extra = {k: data[k] for k in ("cores", "memory", "bridge") if k in data}
        with sim.lock:
            g = sim.add_template_vm(data["vmid"], data["name"], data.get("node"),
                                    data.get("disk_gb", 4), data.get("storage", "local-lvm"),
                                    **extra)
            return 200, self.guest_info(g, full=True)

    def storage_add(self, data):
        """{"storage": "shared-nfs", "type": "nfs", "content": "images,rootdir",
        "shared": true, "total": bytes, "nodes": [...]}: a storage on the nodes (every
        node by default).  A shared one is one storage that every node sees."""
        sim = self.sim
        sid = data.get("storage")
        if not sid or not re.fullmatch(r"[a-z][a-z0-9\-_.]*[a-z0-9]", sid, re.I):
            return 400, {"error": "storage must be a storage ID"}
        kind = data.get("type", "dir")
        if kind not in STORAGE_FORMATS:
            return 400, {"error": "type must be one of %s" % ", ".join(sorted(STORAGE_FORMATS))}
        content = data.get("content", "images,rootdir")
        content = set(split_list(content) if isinstance(content, str) else content)
        bad = content - set(STORAGE_CONTENT_TYPES)
        if bad:
            return 400, {"error": "invalid content type '%s'" % sorted(bad)[0]}
        with sim.lock:
            nodes = data.get("nodes") or list(sim.nodes)
            for n in nodes:
                if n not in sim.nodes:
                    return 404, {"error": "no such node %r" % n}
                if sid in sim.nodes[n].storages:
                    return 400, {"error": "storage '%s' already exists on node %s" % (sid, n)}
            total = int(data.get("total", 4 * 1024 * GiB))
            shared = bool(data.get("shared", kind in ("nfs", "rbd")))
            one = Storage(sid, kind, content, total, int(data.get("base_used", 0)))
            one.shared = shared
            for n in nodes:
                st = one if shared else Storage(sid, kind, set(content), total,
                                                int(data.get("base_used", 0)))
                sim.nodes[n].storages[sid] = st
            sim.changed()
            return 200, {n: sim.storage_status(n, sid) for n in nodes}

    def storage_remove(self, sid):
        sim = self.sim
        with sim.lock:
            nodes = [n for n, node in sim.nodes.items() if sid in node.storages]
            if not nodes:
                return 404, {"error": "no such storage %r" % sid}
            for n in nodes:
                del sim.nodes[n].storages[sid]
            sim.changed()
            return 200, {"removed": sid, "nodes": nodes}

    def guest_password(self, vmid, data):
        with self.sim.lock:
            g = self.sim.guests.get(vmid)
            if g is None:
                return 404, {"error": "no such guest"}
            if "password" not in data and "hash" not in data and not data.get("changed"):
                return 400, {"error": "give password, hash or changed=true"}
            rec = self.sim.record_password(g, data.get("user", "root"), data.get("password"),
                                           data.get("hash"), source=data.get("source", "sim"))
            return 200, {"vmid": vmid, "user": data.get("user", "root"), "record": rec}

    def node_info(self, node):
        sim = self.sim
        live = sim.node_live(node.name)
        return {"node": node.name, "online": node.online, "nodeid": node.nodeid,
                "ip": node.ip, "cpus": node.cpus, "memory": node.memory,
                "base_mem": node.base_mem, "base_cpu": node.base_cpu,
                "mem": live["mem"], "cpu": live["cpu"],
                "storages": {sid: dict(sim.storage_status(node.name, sid),
                                       enabled=int(st.enabled), active=int(st.active))
                             for sid, st in node.storages.items()},
                "templates": node.templates()}

    def node_set(self, data):
        """Node facts: online, cpus, memory (maxmem), base_mem, base_cpu, templates,
        storages {sid: {total, enabled, active}}."""
        sim = self.sim
        with sim.lock:
            node = sim.nodes.get(data.get("node"))
            if node is None:
                return 404, {"error": "no such node"}
            if "online" in data:
                node.online = bool(data["online"])
            for key, conv in (("cpus", int), ("memory", int), ("base_mem", int),
                              ("base_cpu", float)):
                if key in data:
                    value = conv(data[key])
                    if value < 0 or (key in ("cpus", "memory") and value == 0):
                        raise ValueError("%s must be positive" % key)
                    setattr(node, key, value)
            for sid, spec in (data.get("storages") or {}).items():
                st = node.storages.get(sid)
                if st is None:
                    raise ValueError("no storage %r on node %s" % (sid, node.name))
                for key in ("total", "base_used"):
                    if key in spec:
                        setattr(st, key, int(spec[key]))
                for key in ("enabled", "active"):
                    if key in spec:
                        setattr(st, key, bool(spec[key]))
            if "templates" in data:
                self._set_templates(node, data["templates"])
            sim.changed()
        sim.refresh_resources()
        with sim.lock:
            return 200, self.node_info(node)

    def _set_templates(self, node, volids, add=(), remove=()):
        """Replace (volids not None), then add and remove template volumes of a node."""
        if isinstance(volids, str) or isinstance(add, str) or isinstance(remove, str):
            raise ValueError("templates must be lists of volume IDs")
        ctime = now()
        if volids is not None:
            wanted = list(volids) + [v for v in add if v not in volids]
        else:
            wanted = node.templates() + [v for v in add if v not in node.templates()]
        wanted = [v for v in wanted if v not in remove]
        new = {}
        for volid in wanted:
            sid = str(volid).split(":", 1)[0]
            st = node.storages.get(sid)
            if st is None:
                raise ValueError("storage '%s' does not exist on node %s" % (sid, node.name))
            new.setdefault(sid, []).append(volid)
        olds = {sid: st.files for sid, st in node.storages.items()}
        try:
            for sid, st in node.storages.items():
                old = olds[sid]
                st.files = OrderedDict((k, v) for k, v in old.items()
                                       if v["content"] != "vztmpl")
                for volid in new.get(sid, []):
                    if volid in old:
                        st.files[volid] = old[volid]
                    else:
                        st.add_template(volid, ctime)
        except ValueError:
            for sid, st in node.storages.items():       # all or nothing
                st.files = olds[sid]
            raise

    def templates_get(self, query):
        q = dict(urllib.parse.parse_qsl(query))
        with self.sim.lock:
            if q.get("node"):
                node = self.sim.nodes.get(q["node"])
                if node is None:
                    return 404, {"error": "no such node"}
                return 200, {node.name: node.templates()}
            return 200, {n.name: n.templates() for n in self.sim.nodes.values()}

    def templates_set(self, data):
        """{"node": "pve2" (default: every node), "templates": [volid…]} replaces the
        list; "add" / "remove" change it."""
        sim = self.sim
        with sim.lock:
            if data.get("node") is not None:
                node = sim.nodes.get(data["node"])
                if node is None:
                    return 404, {"error": "no such node"}
                nodes = [node]
            else:
                nodes = list(sim.nodes.values())
            for node in nodes:
                self._set_templates(node, data.get("templates"), data.get("add") or (),
                                    data.get("remove") or ())
            sim.changed()
            return 200, {n.name: n.templates() for n in nodes}


# ==========================================================================
# HTTP: one handler for the API and the control endpoint

def _reason(message):
    """Status line reason phrase: the first line of the message, header-safe."""
    line = (message or "").split("\n", 1)[0].strip()
    return line.encode("latin-1", "replace").decode("latin-1") or "Error"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY the body waits ~40 ms for
    # the client's delayed ACK (pveproxy answers in one go)
    disable_nagle_algorithm = True
    timeout = 300               # idle keep-alive connections are closed after this

    def version_string(self):
        return SERVER_HEADER

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("pvesim: %s - %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    # --- plumbing ------------------------------------------------------------------
    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status, reason, body=b"", ctype="application/json;charset=UTF-8",
             close=False):
        self.send_response(status, reason)
        if body or status == 200:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_json(self, status, obj):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send(status, http.HTTPStatus(status).phrase, body)

    def send_error_response(self, err):
        if err.body:
            obj = {"data": None, "message": err.message + ("" if err.status == 501 else "\n")}
            if err.errors:
                obj["errors"] = err.errors
            body = json.dumps(obj, separators=(",", ":")).encode()
        else:
            body = b""
        self.send(err.status, _reason(err.message), body, close=err.close)

    def drop(self, mode):
        """Close the connection without an answer ("reset": with a TCP RST)."""
        self.close_connection = True
        if mode == "reset":
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass

    # --- dispatch ---------------------------------------------------------------------
    def handle_any(self):
        sim = self.server.sim
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        method = self.command
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.send(400, "Bad Request", close=True)
            return
        if path == "/_sim" or path.startswith("/_sim/"):
            status, obj = self.server.control.dispatch(method, path, url.query, body)
            self.send_json(status, obj)
            return
        is_api = path == "/api2/json" or path.startswith("/api2/json/")
        rel = path[len("/api2/json"):] or "/"
        route, path_params = find_route(method, rel) if is_api else (None, {})
        with sim.lock:
            sim.requests["%s %s" % (method, route.path if route else "(unknown)")] += 1
            sim.requests_by_path["%s %s" % (method, rel if is_api else path)] += 1
        for fault in sim.match_faults(method, path):
            if fault["kind"] == "latency":
                time.sleep(fault["seconds"])
            elif fault["kind"] == "drop":
                self.drop(fault["mode"])
                return
            elif fault["kind"] == "status":
                code = fault["code"]
                if "body" in fault:
                    raw = fault["body"]
                    raw = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
                    self.send(code, _reason(fault["message"]), raw)
                elif 595 <= code <= 599:
                    self.send(code, _reason(fault["message"]))
                else:
                    self.send_error_response(ApiError(code, fault["message"]))
                return
        if is_api:
            self.handle_api(method, rel, route, path_params, url.query, body)
        elif path.startswith("/api2/"):
            self.send_error_response(ApiError(501, "Unknown format"))
        else:
            self.send(404, "Not Found", b"")

    def authenticate(self, method):
        """Returns the authenticated user (user@realm or user@realm!token)."""
        sim = self.server.sim
        cookie = self.headers.get("Cookie", "")
        authz = self.headers.get("Authorization", "")
        ticket = _auth_value(cookie, "PVEAuthCookie") or _auth_value(authz, "PVEAuthCookie")
        failure = None
        if ticket:
            user = sim.check_ticket(ticket)
            if user is None:
                failure = "Authentication failed!"
            elif method != "GET" and not sim.check_csrf(
                    self.headers.get("CSRFPreventionToken"), user):
                failure = "Permission denied - invalid csrf token"
            else:
                return user
        else:
            token = _auth_value(authz, "PVEAPIToken")
            if token is None:
                failure = "No ticket"
            else:
                user = sim.check_token(token)
                if user is None:
                    failure = "Authentication failed!"
                else:
                    return user
        time.sleep(sim.auth_fail_delay)
        raise ApiError(401, failure, body=False, close=True)

    def handle_api(self, method, rel, route, raw_path, query, body):
        sim = self.server.sim
        # pve-http-server: a GET of a path ending in "websocket" with an Upgrade header
        # checks the upgrade headers after the API call (not after a failed login)
        upgrade = method == "GET" and rel.endswith("websocket") and \
            bool(self.headers.get("Upgrade"))
        authed = False
        try:
            if method in ("GET", "DELETE", "HEAD") and body:
                # refused by the HTTP layer itself: no JSON body
                raise ApiError(501, "Unexpected content for method '%s'" % method, body=False)
            user = None
            if route is None or route.auth:
                user = self.authenticate(method)
            authed = True
            if route is None:
                raise ApiError(501, "Method '%s %s' not implemented" % (method, rel))
            raw = self.collect_params(method, query, body)
            raw.update(raw_path)
            if route.perm and user is not None:
                # check_api2_permissions: before the proxying and the parameter checks,
                # with the request's parameters (the path's and the others)
                sim.exec_perm_check(user, route.perm, raw)
            node = raw_path.get("node")
            if node is not None:
                n = sim.nodes.get(node)
                if n is None:
                    die("hostname lookup '%s' failed - failed to get address info for: %s: "
                        "Name or service not known" % (node, node))
                if not n.online and route.proxyto == "node":
                    raise ApiError(595, PROXY_REASONS[595], body=False)
            values, errors = validate(route.params, raw)
            if errors:
                param_error(errors)
            ctx = Ctx(user, route)
            data = getattr(self.server.api, route.handler)(ctx, values)
            if method != "GET":
                with sim.lock:
                    sim.changed()
        except ApiError as err:
            if upgrade and authed and self.websocket_refused():
                return
            self.send_error_response(err)
            return
        if upgrade:
            if not self.websocket_refused():
                self.websocket_session(values)
            return
        if isinstance(data, RawJson):
            self.send(200, "OK", data.body)
            return
        out = {"data": data}
        out.update(ctx.extra)
        self.send(200, "OK", json.dumps(out, separators=(",", ":")).encode())

    # --- WebSocket (pve-http-server AnyEvent.pm: the upgrade and websocket_proxy) --------
    def websocket_refused(self):
        """Check the upgrade headers as pve-http-server does; on a problem answer
        500 with the message as a plain body (its error()) and return True."""
        upgrade = (self.headers.get("Upgrade") or "").lower()
        version = self.headers.get("Sec-WebSocket-Version") or ""
        if upgrade != "websocket":
            msg = "unable to upgrade to protocol '%s'" % upgrade
        elif version != "13":
            msg = "unsupported websocket-version '%s'" % version
        elif not self.headers.get("Sec-WebSocket-Key"):
            msg = "missing websocket-key"
        else:
            return False
        self.send_response(500, _reason(msg))
        self.send_header("Content-Length", str(len(msg) + 1))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(msg.encode() + b"\n")
        self.close_connection = True
        return True

    def websocket_session(self, values):
        """101 Switching Protocols, then the port's console on this connection.  With no
        console waiting on the port (never made, timed out, already connected, ended)
        the connection is closed without an answer, as pveproxy's connect fails."""
        sim = self.server.sim
        self.close_connection = True
        with sim.lock:
            session = sim.console_ports.get((values["node"], values["port"]))
        client_port = self.client_address[1] if self.client_address else 0
        if session is None or not session.claim(self.connection, client_port):
            return
        key = self.headers.get("Sec-WebSocket-Key", "").strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        head = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                "Connection: upgrade", "Sec-WebSocket-Accept: " + accept]
        proto = self.headers.get("Sec-WebSocket-Protocol")
        if proto:
            # pve-http-server echoes the request's header as it came
            head.append("Sec-WebSocket-Protocol: " + proto)
        try:
            self.connection.settimeout(None)
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            self.wfile.flush()
        except OSError:
            session.drop()
        session.run(WsConn(self, session))
        if not session.dropped:
            # pveproxy's client_do_disconnect: stoptls (close_notify), then shutdown;
            # never a WebSocket close frame
            try:
                self.connection.settimeout(0.3)
                self.connection.unwrap()
            except (OSError, ValueError):
                pass

    def collect_params(self, method, query, body):
        """Body (form or JSON) first, then the query string, which overrides it."""
        raw = {}
        if body and method in ("POST", "PUT"):
            ctype = self.headers.get("Content-Type", "application/x-www-form-urlencoded")
            if ctype.split(";")[0].strip().lower() == "application/json":
                try:
                    obj = json.loads(body)
                except ValueError as e:
                    raise ApiError(400, "malformed JSON string: %s" % e)
                if not isinstance(obj, dict):
                    raise ApiError(400, "malformed JSON body: not an object")
                raw.update((k, wire_value(v)) for k, v in obj.items())
            else:
                raw.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                                  keep_blank_values=True))
        raw.update(urllib.parse.parse_qsl(query, keep_blank_values=True))
        return raw


def find_route(method, rel):
    """(route, path parameters) for a path below /api2/json; route is None if the
    path or the method is not served."""
    for r in ROUTES:
        m = r.regex.match(rel)
        if m and r.method == method:
            return r, dict(zip(r.names, (urllib.parse.unquote(x) for x in m.groups())))
    return None, {}


def _auth_value(header, key):
    """extract_auth_value: (?:^|\\s)KEY(?:=| )([^;]*), URI-unescaped."""
    m = re.search(r"(?:^|\s)%s(?:=| )([^;]*)" % re.escape(key), header or "")
    return urllib.parse.unquote(m.group(1)) if m else None


class Server(http.server.ThreadingHTTPServer):
    """Threaded HTTPS server; the TLS handshake runs in the connection's thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, sim, ssl_ctx, verbose=False):
        self.sim = sim
        self.api = Api(sim)
        self.control = Control(sim)
        self.ssl_ctx = ssl_ctx
        self.verbose = verbose
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.address_family = family
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        try:
            first = request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if not first:
            return
        if first[0] != 0x16:                 # not a TLS handshake: plain HTTP
            self._redirect_plain(request)
            return
        try:
            conn = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            try:
                conn.close()        # no close_notify: a dropped connection just ends
            except OSError:
                pass

    def _redirect_plain(self, sock):
        try:
            sock.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 8192:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            parts = data.split(b" ", 2)
            target = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            host, port = self.server_address[:2]
            loc = "https://%s:%d%s" % (host, port, target)
            sock.sendall(("HTTP/1.1 301 Moved Permanently\r\nLocation: %s\r\n"
                          "Server: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                          % (loc, SERVER_HEADER)).encode())
        except OSError:
            pass

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


# ==========================================================================
# Certificates (openssl CLI) and start-up

def make_certificates(state_dir, host):
    """A self-signed CA (ca.pem) and a server certificate it signs (pve-ssl.pem/.key)."""
    ca_key = os.path.join(state_dir, "ca.key")
    ca_pem = os.path.join(state_dir, "ca.pem")
    key = os.path.join(state_dir, "pve-ssl.key")
    pem = os.path.join(state_dir, "pve-ssl.pem")
    csr = os.path.join(state_dir, "pve-ssl.csr")
    ext = os.path.join(state_dir, "pve-ssl.ext")
    san = ["IP:127.0.0.1", "DNS:localhost"]
    try:
        ip = ipaddress.ip_address(host)
        if not ip.is_unspecified and str(ip) != "127.0.0.1":
            san.append("IP:%s" % ip)
    except ValueError:
        san.append("DNS:%s" % host)
    if all(os.path.exists(p) for p in (ca_key, ca_pem, key, pem)):
        text = subprocess.run(["openssl", "x509", "-in", pem, "-noout", "-ext",
                               "subjectAltName"], capture_output=True, text=True).stdout
        wanted = [s.replace("IP:", "IP Address:") for s in san]
        if all(w in text for w in wanted):
            return ca_pem, pem, key

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_pem,
        "-days", "3650", "-subj", "/CN=pvesim Proxmox Virtual Environment CA/OU=%s/O=PVE Cluster "
        "Manager CA" % uuid.uuid4(), "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=127.0.0.1/OU=PVE Cluster Node/O=Proxmox Virtual Environment")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                % ",".join(san))
    run("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
        "-out", pem, "-days", "825", "-sha256", "-extfile", ext)
    for p in (csr, ext):
        os.unlink(p)
    os.chmod(key, 0o600)
    os.chmod(ca_key, 0o600)
    return ca_pem, pem, key


def cert_fingerprint(pem_path):
    with open(pem_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def parse_token(text):
    tokenid, sep, secret = text.rpartition("=")
    if not sep or not re.fullmatch(r"[^\s!@]+@[A-Za-z][A-Za-z.\-_0-9]+![A-Za-z][A-Za-z0-9.\-_]+",
                                   tokenid):
        raise argparse.ArgumentTypeError("token must look like USER@REALM!TOKENID=SECRET")
    return tokenid, secret


def parse_token_privs(text):
    tokenid, sep, privs = text.partition("=")
    if not sep or "!" not in tokenid:
        raise argparse.ArgumentTypeError("token privileges must look like "
                                         "USER@REALM!TOKENID=PRIV,PRIV...")
    names = [x for x in re.split(r"[,;\s]+", privs) if x]
    bad = [x for x in names if x not in ALL_PRIVS]
    if bad:
        raise argparse.ArgumentTypeError("invalid privilege '%s'" % bad[0])
    return tokenid, frozenset(names)


def parse_qemu_templates(text):
    """--qemu-templates 'VMID:NAME[:NODE[:DISK_GB[:STORAGE]]][,…]'"""
    out = []
    for item in [x for x in text.split(",") if x.strip()]:
        parts = item.strip().split(":")
        if not 2 <= len(parts) <= 5 or not parts[0].isdigit() or not parts[1]:
            raise argparse.ArgumentTypeError(
                "a template must look like VMID:NAME[:NODE[:DISK_GB[:STORAGE]]]")
        spec = {"vmid": int(parts[0]), "name": parts[1]}
        if len(parts) > 2 and parts[2]:
            spec["node"] = parts[2]
        if len(parts) > 3 and parts[3]:
            try:
                spec["disk_gb"] = float(parts[3])
            except ValueError:
                raise argparse.ArgumentTypeError("DISK_GB must be a number: %r" % parts[3])
        if len(parts) > 4 and parts[4]:
            spec["storage"] = parts[4]
        out.append(spec)
    return out


def parse_cli_size(text):
    size = parse_size(text.strip())
    if not size:
        raise argparse.ArgumentTypeError("size must look like 64G, 512M or a byte count")
    return size


def main(argv=None):
    ap = argparse.ArgumentParser(description="Proxmox VE API simulator (see README.md)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8006, help="0 picks a free port")
    ap.add_argument("--state-dir", required=True,
                    help="where the certificates and pvesim.json are written")
    ap.add_argument("--nodes", default="pve", help="comma-separated node names")
    ap.add_argument("--token", action="append", type=parse_token, default=[],
                    help="USER@REALM!TOKENID=SECRET (repeatable; default: a random one)")
    ap.add_argument("--token-privs", action="append", type=parse_token_privs, default=[],
                    metavar="TOKENID=PRIV,PRIV...",
                    help="restrict a token to these privileges on / (propagated), e.g. "
                         "'root@pam!ospab=VM.Audit,Sys.Audit'; repeatable; default: all")
    ap.add_argument("--password", default=None, help="root@pam password for /access/ticket")
    ap.add_argument("--guests", type=int, default=0, help="pre-existing containers")
    ap.add_argument("--qemu-guests", type=int, default=0, help="pre-existing QEMU VMs")
    ap.add_argument("--qemu-templates", action="append", type=parse_qemu_templates, default=[],
                    metavar="VMID:NAME[:NODE[:DISK_GB[:STORAGE]]][,...]",
                    help="stopped cloud-init VM templates (repeatable), e.g. "
                         "'9000:debian-12-cloud:pve1:4:local-lvm'")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="multiplies every task duration (0.1 = ten times faster)")
    ap.add_argument("--resources-lag", type=float, default=5.0,
                    help="seconds between refreshes of /cluster/resources data")
    ap.add_argument("--auth-fail-delay", type=float, default=3.0,
                    help="delay before a 401 (Proxmox waits about 3 s)")
    ap.add_argument("--lock-timeout", type=float, default=10.0,
                    help="how long lock_config waits for a busy config lock")
    ap.add_argument("--cluster-name", default="pvesim",
                    help="the cluster's name in /cluster/status")
    ap.add_argument("--node-memory", type=parse_cli_size, default=128 * GiB,
                    help="every node's memory (maxmem), e.g. 64G; a plain number is bytes")
    ap.add_argument("--node-cpus", type=int, default=16, help="every node's CPU count")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9\-_]{0,14}", args.cluster_name):
        ap.error("invalid cluster name %r (pvecm: at most 15 of A-Za-z0-9-_)" % args.cluster_name)
    if args.node_cpus < 1:
        ap.error("--node-cpus must be at least 1")
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
    for n in nodes:
        if not re.fullmatch(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?", n):
            ap.error("invalid node name %r" % n)
    tokens = args.token or [("root@pam!ospab", str(uuid.uuid4()))]
    token_privs = dict(args.token_privs)
    for tokenid in token_privs:
        if tokenid not in dict(tokens):
            ap.error("--token-privs: no such token %r" % tokenid)
    password = args.password or secrets.token_urlsafe(12)
    os.makedirs(args.state_dir, exist_ok=True)
    ca, pem, key = make_certificates(args.state_dir, args.host)

    templates = [t for group in args.qemu_templates for t in group]
    try:
        sim = Sim(nodes, tokens, {"root@pam": password}, time_scale=args.time_scale,
                  resources_lag=args.resources_lag, auth_fail_delay=args.auth_fail_delay,
                  lock_timeout=args.lock_timeout, guests=args.guests,
                  qemu_guests=args.qemu_guests, cluster_name=args.cluster_name,
                  node_cpus=args.node_cpus, node_memory=args.node_memory,
                  token_privs=token_privs, qemu_templates=templates)
    except ValueError as e:
        ap.error("--qemu-templates: %s" % e)
    with open(ca) as f:
        sim.ca_pem = f.read()
    sim.fingerprint = cert_fingerprint(pem)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pem, key)
    server = Server((args.host, args.port), sim, ctx, verbose=args.verbose)
    port = server.server_address[1]
    host = args.host if ":" not in args.host else "[%s]" % args.host
    url = "https://%s:%d" % (host, port)
    threading.Thread(target=sim.resources_loop, daemon=True, name="pvestatd").start()

    tokenid, secret = tokens[0]
    line = "pvesim listening on %s" % url
    info = {"line": line, "url": url, "api": url + "/api2/json", "control": url + "/_sim",
            "host": args.host, "port": port, "pid": os.getpid(),
            "ca": os.path.abspath(ca), "cert": os.path.abspath(pem),
            "key": os.path.abspath(key), "fingerprint": sim.fingerprint,
            "token": "%s=%s" % (tokenid, secret), "token_id": tokenid, "token_secret": secret,
            "tokens": ["%s=%s" % t for t in tokens], "user": "root@pam", "password": password,
            "token_privs": {t: sorted(p) for t, p in token_privs.items()},
            "nodes": nodes, "cluster_name": args.cluster_name,
            "state_dir": os.path.abspath(args.state_dir), "time_scale": args.time_scale,
            "resources_lag": args.resources_lag}
    path = os.path.join(args.state_dir, "pvesim.json")
    with open(path + ".tmp", "w") as f:
        json.dump(info, f, indent=2)
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)
    print(line, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        sim.res_stop.set()
        sim.res_wake.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
