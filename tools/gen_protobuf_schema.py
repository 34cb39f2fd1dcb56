#!/usr/bin/env python3
"""Generate ``vkube/api/protobuf_schema.json`` from the Go type metadata inside a kubectl binary.

Why a binary and not ``generated.proto``: decoding a Kubernetes protobuf body into the JSON a
client would have sent needs, per field, the protobuf number *and* the Go facts behind the JSON
(pointer or not, ``omitempty``, ``,inline`` embedding such as ``Volume.VolumeSource``). Every Go
binary that links ``k8s.io/api`` keeps exactly that in its reflection data: struct field names,
their Go types and their full struct tags (``json:"replicas,omitempty"
protobuf:"varint,1,opt,name=replicas"``). Reading it from the kubectl we test against pins the
schema to the same Kubernetes release, with nothing downloaded and no ``.proto`` files kept.

Usage: ``python tools/gen_protobuf_schema.py [path/to/kubectl] [-o out.json]``.
Supports little-endian 64-bit ELF Go binaries built by go >= 1.21 (``internal/abi`` layout).
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# internal/abi Kind values we care about.
BOOL, INT, INT8, INT16, INT32, INT64 = 1, 2, 3, 4, 5, 6
UINT, UINT8, UINT16, UINT32, UINT64, UINTPTR = 7, 8, 9, 10, 11, 12
FLOAT32, FLOAT64 = 13, 14
ARRAY, INTERFACE, MAP, POINTER, SLICE, STRING, STRUCT = 17, 20, 21, 22, 23, 24, 25
TFLAG_UNCOMMON, TFLAG_EXTRA_STAR = 1, 2
TYPE_HEADER = 48  # sizeof(abi.Type) on 64-bit

# Go types whose JSON form is not their struct shape: decoded by hand in vkube/api/protobuf.py.
SPECIAL = {
    "k8s.io/apimachinery/pkg/apis/meta/v1.Time": "time",
    "k8s.io/apimachinery/pkg/apis/meta/v1.MicroTime": "microtime",
    "k8s.io/apimachinery/pkg/apis/meta/v1.Duration": "duration",
    "k8s.io/apimachinery/pkg/apis/meta/v1.FieldsV1": "rawjson",
    "k8s.io/apimachinery/pkg/api/resource.Quantity": "quantity",
    "k8s.io/apimachinery/pkg/util/intstr.IntOrString": "intorstring",
    "k8s.io/apimachinery/pkg/runtime.RawExtension": "rawextension",
}
SCALARS = {
    BOOL: "bool", STRING: "string", FLOAT64: "double", FLOAT32: "float",
    **{k: "int" for k in (INT, INT8, INT16, INT32, INT64)},
    **{k: "uint" for k in (UINT, UINT8, UINT16, UINT32, UINT64, UINTPTR)},
}
# Field flags stored in the schema (mirrored in vkube/api/protobuf.py).
F_POINTER, F_OMITEMPTY, F_INLINE, F_REPEATED, F_MAP, F_OMITZERO = 1, 2, 4, 8, 16, 32
PACKAGE_PREFIXES = ("k8s.io/api/", "k8s.io/apimachinery/", "k8s.io/kube-aggregator/",
                    "k8s.io/apiextensions-apiserver/", "k8s.io/metrics/")


class Binary:
    """Just enough of ELF and Go's runtime type encoding to walk struct types."""

    def __init__(self, data: bytes) -> None:
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise SystemExit("need a little-endian 64-bit ELF Go binary")
        self.data = data
        phoff, = struct.unpack_from("<Q", data, 0x20)
        shoff, = struct.unpack_from("<Q", data, 0x28)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
        self.loads = []
        for i in range(phnum):
            ptype, _, offset, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
            if ptype == 1:  # PT_LOAD
                self.loads.append((vaddr, vaddr + filesz, offset))
        sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
        names_off = sections[shstrndx][4]
        self.sections = {}
        for name_idx, _, _, addr, offset, size in sections:
            end = data.index(b"\0", names_off + name_idx)
            self.sections[data[names_off + name_idx:end].decode()] = (addr, offset, size)
        # The linker puts type data at the start of .rodata and typelinks are offsets from it.
        self.types_base = self.sections[".rodata"][0]

    def off(self, va: int) -> int:
        for start, end, offset in self.loads:
            if start <= va < end:
                return va - start + offset
        raise ValueError(f"address {va:#x} is not in the file")

    def u64(self, va: int, delta: int = 0) -> int:
        return struct.unpack_from("<Q", self.data, self.off(va) + delta)[0]

    def name(self, va: int) -> tuple[str, str, int]:
        """Decode an abi.Name: flags byte, varint length, bytes, optional varint-prefixed tag."""
        p = self.off(va)
        flags = self.data[p]
        n, p = self._varint(p + 1)
        text = self.data[p:p + n].decode("utf-8", "replace")
        tag = ""
        if flags & 2:
            m, p = self._varint(p + n)
            tag = self.data[p:p + m].decode("utf-8", "replace")
        return text, tag, flags

    def _varint(self, p: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            b = self.data[p]
            p += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value, p

    def typelinks(self) -> list[int]:
        _, offset, size = self.sections[".typelink"]
        return [self.types_base + o for o in struct.unpack_from(f"<{size // 4}i", self.data, offset)]


@dataclass
class GoType:
    addr: int
    kind: int
    string: str  # reflect's String(), e.g. "*v1.Deployment"
    full: str  # import path + "." + name for named types, else ""
    elem: int = 0
    key: int = 0
    fields: list[tuple[str, str, int, bool]] | None = None  # (name, tag, type, embedded)


def read_type(b: Binary, va: int) -> GoType:
    p = b.off(va)
    tflag, kind = b.data[p + 20], b.data[p + 23] & 0x1F
    str_off, = struct.unpack_from("<i", b.data, p + 40)
    string = b.name(b.types_base + str_off)[0]
    if tflag & TFLAG_EXTRA_STAR:
        string = string[1:]
    t = GoType(va, kind, string, "")
    extra = TYPE_HEADER + 8
    if kind in (POINTER, SLICE, ARRAY):
        t.elem = b.u64(va, TYPE_HEADER)
        extra = TYPE_HEADER + (24 if kind == ARRAY else 8)
    elif kind == MAP:
        t.key, t.elem = b.u64(va, TYPE_HEADER), b.u64(va, TYPE_HEADER + 8)
        extra = 0  # map type sizes differ between Go releases; names come from the string
    elif kind == STRUCT:
        fields_ptr, count = b.u64(va, TYPE_HEADER + 8), b.u64(va, TYPE_HEADER + 16)
        t.fields = []
        for i in range(count):
            name_ptr, ftype = b.u64(fields_ptr + 24 * i), b.u64(fields_ptr + 24 * i + 8)
            fname, tag, flags = b.name(name_ptr)
            t.fields.append((fname, tag, ftype, bool(flags & 8)))
        extra = TYPE_HEADER + 32
    elif kind in SCALARS or kind == INTERFACE:
        extra = TYPE_HEADER + (32 if kind == INTERFACE else 0)
    if tflag & TFLAG_UNCOMMON and extra and "." in string and not string.startswith(("*", "[", "map[")):
        pkg_off, = struct.unpack_from("<i", b.data, b.off(va) + extra)
        pkg = b.name(b.types_base + pkg_off)[0]
        t.full = pkg + "." + string.split(".", 1)[1]
    return t


def walk(b: Binary) -> dict[int, GoType]:
    types: dict[int, GoType] = {}
    stack = b.typelinks()
    while stack:
        va = stack.pop()
        if va in types:
            continue
        t = types[va] = read_type(b, va)
        stack.extend(x for x in (t.elem, t.key) if x)
        stack.extend(f[2] for f in t.fields or ())
    return types


TAG_RE = re.compile(r'(\w+):"((?:[^"\\]|\\.)*)"')


def parse_tag(tag: str) -> dict[str, str]:
    return dict(TAG_RE.findall(tag))


class SchemaBuilder:
    """Turns reachable Kubernetes struct types into the compact message table."""

    def __init__(self, types: dict[int, GoType]) -> None:
        self.types = types
        self.messages: dict[str, list[list]] = {}
        self.pending: list[GoType] = []

    def value_type(self, t: GoType) -> str:
        """Type code of one value: scalar name, "bytes", special name or "msg:<full>"."""
        if t.full in SPECIAL:
            return SPECIAL[t.full]
        if t.kind == SLICE and self.types[t.elem].kind == UINT8:
            return "bytes"
        if t.kind == STRUCT:
            self.pending.append(t)
            return "msg:" + t.full
        if t.kind == SLICE and not t.string.startswith("["):
            # go-to-protobuf wraps a named slice (metav1.Verbs, ExtraValue) in {items: 1}.
            return "items:" + self.value_type(self.types[t.elem])
        if t.kind in SCALARS:
            return SCALARS[t.kind]
        raise ValueError(f"no protobuf mapping for Go type {t.string}")

    def message(self, t: GoType) -> None:
        fields = []
        for fname, tag, ftype, embedded in t.fields or ():
            tags = parse_tag(tag)
            proto = tags.get("protobuf", "")
            if not proto or proto == "-":
                continue  # not on the wire (TypeMeta, time.Time inside metav1.Time, ...)
            proto_parts = proto.split(",")
            number = int(proto_parts[1])
            json_parts = tags.get("json", "").split(",")
            json_name, opts = json_parts[0], set(json_parts[1:])
            if json_name == "-":
                continue
            flags = 0
            if "omitempty" in opts:
                flags |= F_OMITEMPTY
            if "omitzero" in opts:
                flags |= F_OMITZERO
            if not json_name and (embedded or "inline" in opts):
                flags |= F_INLINE
            elif not json_name:
                json_name = fname
            go = self.types[ftype]
            if go.kind == POINTER:
                flags |= F_POINTER
                go = self.types[go.elem]
            if go.kind == MAP:
                flags |= F_MAP
                vtype: object = [self.value_type(self.types[go.key]), self.value_type(self.types[go.elem])]
            elif go.kind == SLICE and self.types[go.elem].kind != UINT8 and (
                    go.string.startswith("[") or "rep" in proto_parts[2:3]):
                # Unnamed slices are repeated fields (some are tagged "opt" all the same);
                # a named slice is a wrapper message unless tagged "rep".
                flags |= F_REPEATED
                vtype = self.value_type(self.types[go.elem])
            else:
                vtype = self.value_type(go)
            fields.append([number, json_name, flags, vtype])
        self.messages[t.full] = fields

    def build(self, roots: list[GoType]) -> dict[str, list[list]]:
        self.pending.extend(roots)
        while self.pending:
            t = self.pending.pop()
            if t.full not in self.messages and t.full not in SPECIAL:
                self.messages[t.full] = []  # placeholder breaks recursive types
                self.message(t)
        return dict(sorted(self.messages.items()))


def check(messages: dict[str, list[list]]) -> None:
    """Refuse to write a schema that gets well-known fields wrong (e.g. a changed Go ABI)."""
    expect = {
        "k8s.io/api/apps/v1.DeploymentSpec": [1, "replicas", F_POINTER | F_OMITEMPTY, "int"],
        "k8s.io/api/core/v1.ContainerPort": [3, "containerPort", 0, "int"],
        "k8s.io/api/core/v1.Volume": [2, "", F_INLINE, "msg:k8s.io/api/core/v1.VolumeSource"],
        "k8s.io/api/core/v1.Secret": [2, "data", F_OMITEMPTY | F_MAP, ["string", "bytes"]],
        "k8s.io/apimachinery/pkg/apis/meta/v1.ObjectMeta": [1, "name", F_OMITEMPTY, "string"],
    }
    for name, field in expect.items():
        if field not in messages.get(name, []):
            raise SystemExit(f"sanity check failed: {name} lacks {field}; is this a Go binary "
                             "whose type layout this script does not know?")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("binary", nargs="?", default=str(root / ".venv/bin/kubectl"))
    parser.add_argument("-o", "--output", default=str(root / "vkube/api/protobuf_schema.json"))
    args = parser.parse_args(argv)
    data = Path(args.binary).read_bytes()
    types = walk(Binary(data))
    roots = [t for t in types.values()
             if t.kind == STRUCT and t.full.startswith(PACKAGE_PREFIXES)
             and any("protobuf:" in f[1] for f in t.fields or ())]
    messages = SchemaBuilder(types).build(roots)
    check(messages)
    try:
        out = subprocess.run([args.binary, "version", "--client", "-o", "json"], capture_output=True,
                             check=True, timeout=30).stdout
        version = json.loads(out)["clientVersion"]["gitVersion"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        version = "unknown"
    # One message per line keeps diffs readable.
    lines = [f"{json.dumps(name)}:{json.dumps(fields, separators=(',', ':'))}"
             for name, fields in messages.items()]
    header = json.dumps({"source": f"{Path(args.binary).name} {version}"})[:-1]
    Path(args.output).write_text(header + ',"messages":{\n' + ",\n".join(lines) + "\n}}\n")
    print(f"wrote {len(messages)} messages to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
