"""Helpers of scripts/build-bundle (standard library only, so a fresh clone needs no venv for them).

    bundle_stamp.py restamp BUNDLE.mcpb EPOCH      fixed timestamps in a packed bundle
    bundle_stamp.py server-json SERVER.json BUNDLE.mcpb URL
                                                  write the bundle's sha256 and URL into server.json
    bundle_stamp.py version PYPROJECT MANIFEST    print the version after checking both agree

`mcpb pack` stamps every zip entry with the time of the build, so two builds of the same sources
would differ and the sha256 published in server.json could never be reproduced. `restamp` rewrites
only the DOS date/time fields of the local headers and the central directory (the compressed data,
names, order and permissions stay exactly as mcpb wrote them): the same sources then give the same
bytes, and the same sha256.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import time
import tomllib
import zipfile
from pathlib import Path

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"


def dos_time(epoch: int) -> tuple[int, int]:
    t = time.gmtime(max(epoch, 315532800))  # the zip format starts at 1980-01-01
    clock = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    day = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return clock, day


def restamp(path: Path, epoch: int) -> None:
    data = bytearray(path.read_bytes())
    stamp = struct.pack("<HH", *dos_time(epoch))
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
    for info in infos:  # local file headers: time/date at +10
        at = info.header_offset
        if data[at : at + 4] != LOCAL_SIG:
            raise SystemExit(f"{path}: no local header for {info.filename} at {at}")
        data[at + 10 : at + 14] = stamp
    at = data.find(CENTRAL_SIG)
    count = 0
    while at != -1 and count < len(infos):  # central directory records: time/date at +12
        data[at + 12 : at + 16] = stamp
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, at + 28)
        at += 46 + name_len + extra_len + comment_len
        count += 1
        if data[at : at + 4] != CENTRAL_SIG:
            break
    if count != len(infos):
        raise SystemExit(f"{path}: found {count} central directory records for {len(infos)} entries")
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as z:  # still a valid archive, every CRC intact
        bad = z.testzip()
        if bad is not None:
            raise SystemExit(f"{path}: entry {bad} is corrupt after restamping")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_server_json(server_json: Path, bundle: Path, url: str) -> str:
    doc = json.loads(server_json.read_text(encoding="utf-8"))
    digest = sha256(bundle)
    entries = [p for p in doc.get("packages", []) if p.get("registryType") == "mcpb"]
    if len(entries) != 1:
        raise SystemExit(f"{server_json}: expected one mcpb package, found {len(entries)}")
    entries[0]["identifier"] = url
    entries[0]["fileSha256"] = digest
    server_json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return digest


def checked_version(pyproject: Path, manifest: Path) -> str:
    version = str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    declared = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    if declared != version:
        raise SystemExit(f"{manifest} says version {declared}, pyproject.toml {version}: make them agree")
    return version


def main(argv: list[str]) -> int:
    match argv:
        case ["restamp", bundle, epoch]:
            restamp(Path(bundle), int(epoch))
        case ["server-json", server_json, bundle, url]:
            print(write_server_json(Path(server_json), Path(bundle), url))
        case ["version", pyproject, manifest]:
            print(checked_version(Path(pyproject), Path(manifest)))
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
