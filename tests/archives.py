"""A corpus of crafted script archives that every install transport must refuse.

Each holds a valid ``evil.para`` (script ``evil`` 1.0.0) plus one unsafe or damaged part,
so the refusal is for that part alone. ``CORPUS`` maps a case name to the archive bytes
and the message that follows ``<archive>: `` on the error line (exit 2, nothing written).
Fuzz tests can take these as seeds; test_install.py runs each through every transport.
"""

from __future__ import annotations

import io
import stat
import struct
import warnings
import zipfile
from typing import NamedTuple

SCRIPT_ID = "evil"
VERSION = "1.0.0"
PARA = f"""id: {SCRIPT_ID}
schemaVersion: '0.2'
version: '{VERSION}'
title: {SCRIPT_ID}
inputs:
  text:
    type: string
outputs:
  result:
    type: string
""".encode()
HANDLER = b"def main(event, context):\n    return {'result': 'x'}\n" * 20
LIMIT = 50 * 1024 * 1024  # hub.MAX_ARCHIVE_BYTES, kept literal so the corpus stands alone


class Crafted(NamedTuple):
    data: bytes
    message: str


Member = tuple[str | zipfile.ZipInfo, bytes]


def zipped(*members: Member, method: int = zipfile.ZIP_DEFLATED, para: bool = True) -> bytes:
    """A zip holding ``evil.para`` (unless ``para`` is false) and ``members``."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", method) as archive:
        warnings.simplefilter("ignore")  # "Duplicate name": some cases want one
        if para:
            archive.writestr(f"{SCRIPT_ID}.para", PARA)
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def special(name: str, mode: int) -> zipfile.ZipInfo:
    """A member whose Unix mode makes it a link, a device, a pipe..."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def bzip2(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_BZIP2
    return info


def _data_offset(data: bytes, name: str) -> int:
    """Where the data of member ``name`` starts (after its local header)."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    return info.header_offset + 30 + name_length + extra_length


def bad_crc() -> bytes:
    """A stored member with one byte of its data changed."""
    data = bytearray(zipped(("handler/handler.py", HANDLER), method=zipfile.ZIP_STORED))
    data[_data_offset(bytes(data), "handler/handler.py") + 10] ^= 0x01
    return bytes(data)


def size_smaller_than_data() -> bytes:
    """A member whose headers declare 10 bytes less than its data holds."""
    data = bytearray(zipped(("handler/handler.py", HANDLER), method=zipfile.ZIP_STORED))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("handler/handler.py")
    smaller = info.file_size - 10
    struct.pack_into("<I", data, info.header_offset + 22, smaller)  # local header
    central = bytes(data).rindex(b"PK\x01\x02", 0, bytes(data).index(b"PK\x05\x06"))
    struct.pack_into("<I", data, central + 24, smaller)  # central directory (last entry)
    return bytes(data)


def corrupt_deflate() -> bytes:
    """A deflated member whose stream starts with a block of the reserved type."""
    data = bytearray(zipped(("handler/handler.py", HANDLER)))
    data[_data_offset(bytes(data), "handler/handler.py")] = 0x07  # BFINAL=1, BTYPE=11
    return bytes(data)


def with_para(para: bytes) -> bytes:
    """A zip whose ``evil.para`` is ``para`` (a handler beside it)."""
    return zipped((f"{SCRIPT_ID}.para", para), ("handler/handler.py", HANDLER), para=False)


def para_laughs(levels: int) -> bytes:
    """``PARA`` and a "billion laughs" block: each level ten aliases of the one below."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return PARA + ("\n".join(lines) + "\n").encode()


def _in_para(text: str) -> str:
    return f"{SCRIPT_ID}.para:{text} (in the archive)"


def _member(text: str) -> str:
    return f"archive member {text}"


def _members(text: str) -> str:
    return f"archive members {text}"


DEEP = "handler/" + "d/" * 2000 + "x.py"
LONG_PART = "handler/" + "a" * 300 + ".py"
LONG_NAME = "handler/" + "/".join(["b" * 200] * 6) + "/x.py"
TOO_DEEP = "handler/" + "d/" * 70 + "x.py"

CORPUS: dict[str, Crafted] = {
    "double-slash": Crafted(
        zipped(("handler/handler.py", b"a"), ("handler//handler.py", b"b")),
        _members("'handler/handler.py' and 'handler//handler.py' are the same path; refusing it"),
    ),
    "dot-slash": Crafted(
        zipped(("handler/handler.py", b"a"), ("./handler/handler.py", b"b")),
        _members("'handler/handler.py' and './handler/handler.py' are the same path; refusing it"),
    ),
    "file-and-folder": Crafted(
        zipped(("handler", b"a"), ("handler/handler.py", b"b")),
        _member("'handler' is a file and also a folder; refusing it"),
    ),
    "folder-then-file": Crafted(
        zipped(("handler/handler.py", b"b"), ("handler/handler.py/x", b"a")),
        _member("'handler/handler.py' is a file and also a folder; refusing it"),
    ),
    "dot": Crafted(zipped((".", b"a")), _member("'.' names the top folder itself; refusing it")),
    "dot-folder": Crafted(
        zipped(("./", b"")), _member("'./' names the top folder itself; refusing it")
    ),
    "twice": Crafted(
        zipped(("handler/handler.py", b"a"), ("handler/handler.py", b"b")),
        _member("'handler/handler.py' appears twice"),
    ),
    "bad-crc": Crafted(
        bad_crc(),
        _member(
            "'handler/handler.py' is damaged (its CRC-32 does not match its data); refusing it"
        ),
    ),
    "size-smaller-than-data": Crafted(
        size_smaller_than_data(),
        _member(
            "'handler/handler.py' is damaged (its CRC-32 does not match its data); refusing it"
        ),
    ),
    "corrupt-deflate": Crafted(
        corrupt_deflate(),
        _member("'handler/handler.py' is damaged (its compressed data is corrupt); refusing it"),
    ),
    "bzip2": Crafted(
        zipped((bzip2("handler/handler.py"), HANDLER)),
        _member(
            "'handler/handler.py' uses compression method 12 (only stored and deflated are read); "
            "refusing it"
        ),
    ),
    "long-part": Crafted(
        zipped((LONG_PART, b"x")),
        _member(
            f"{repr(LONG_PART)[:57]}... has a file or folder name longer than 255 bytes; "
            "refusing it"
        ),
    ),
    "long-name": Crafted(
        zipped((LONG_NAME, b"x")),
        _member(f"{repr(LONG_NAME)[:57]}... has a name longer than 1024 bytes; refusing it"),
    ),
    "too-deep": Crafted(
        zipped((TOO_DEEP, b"x")),
        _member(f"{repr(TOO_DEEP)[:57]}... is more than 64 folders deep; refusing it"),
    ),
    "2000-deep": Crafted(
        zipped((DEEP, b"x")),
        _member(f"{repr(DEEP)[:57]}... has a name longer than 1024 bytes; refusing it"),
    ),
    "dotdot": Crafted(
        zipped(("../evil", b"x")), _member("'../evil' escapes the target folder; refusing it")
    ),
    "inner-dotdot": Crafted(
        zipped(("handler/../../evil", b"x")),
        _member("'handler/../../evil' escapes the target folder; refusing it"),
    ),
    "absolute": Crafted(
        zipped(("/tmp/evil", b"x")), _member("'/tmp/evil' has an absolute path; refusing it")
    ),
    "symlink": Crafted(
        zipped((special("handler/link", stat.S_IFLNK | 0o777), b"/etc/passwd")),
        _member("'handler/link' is a symbolic link; refusing it"),
    ),
    "device": Crafted(
        zipped((special("handler/dev", stat.S_IFBLK | 0o600), b"")),
        _member("'handler/dev' is a block device; refusing it"),
    ),
    "oversized": Crafted(
        zipped(("handler/big.bin", b"\0" * (LIMIT + 1))),
        "archive unpacks to more than 50 MB; refusing it",
    ),
    "no-para": Crafted(
        zipped(("handler/handler.py", b"x"), para=False),
        "a script archive holds one <id>.para at its top level; found none",
    ),
    # the para inside: what trek validate refuses in a file, install refuses in an archive
    "para-laughs": Crafted(
        with_para(para_laughs(9)),
        _in_para(
            "15:45: invalid YAML: aliases expand to more than 100,000 values; write the values out"
        ),
    ),
    "para-control-character": Crafted(
        with_para(PARA.replace(b"title: evil", b"title: e\x01vil")),
        _in_para("4:9: control character U+0001 is not allowed; remove it"),
    ),
    "para-not-utf8": Crafted(
        with_para(PARA.replace(b"title: evil", b"title: \xe9vil")),
        f"{SCRIPT_ID}.para in the archive is not UTF-8 text",
    ),
    "para-deep": Crafted(
        with_para(PARA + b"x: " + b"[" * 1000 + b"]" * 1000 + b"\n"),
        _in_para("11:103: invalid YAML: values nested more than 100 levels deep"),
    ),
    "para-big-int": Crafted(
        with_para(PARA + b"x: " + b"9" * 5000 + b"\n"),
        _in_para("11:4: invalid YAML: a number of more than 4300 digits"),
    ),
    "para-a-folder": Crafted(
        zipped((f"{SCRIPT_ID}.para/x", b"x"), para=False),
        "a script archive holds one <id>.para at its top level; found none",
    ),
    "not-a-zip": Crafted(
        b"PK\x03\x04 but not really", "not a readable zip archive (File is not a zip file)"
    ),
    "truncated": Crafted(
        zipped(("handler/handler.py", HANDLER))[:-30],
        "not a readable zip archive (File is not a zip file)",
    ),
}
