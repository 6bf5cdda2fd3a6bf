"""The backup archive: a tar of `manifest.json`, `postgres.dump` and one snapshot per stream.

The manifest comes first and lists every other member with its size and SHA-256, and the last
member is the manifest's own SHA-256, so a reader checks the whole archive before touching a
stack: a truncated or altered archive is refused.
Members are plain files of known names; nothing in an archive is extracted by a path it names.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ValidationError

FORMAT: Final = 1
"""Bumped when a member changes meaning; `restore` refuses a newer format than it reads."""
MANIFEST: Final = "manifest.json"
MANIFEST_DIGEST: Final = "manifest.sha256"
"""The last member: the manifest's own SHA-256 (the manifest holds everyone else's)."""
POSTGRES: Final = "postgres.dump"
_COPY_BYTES: Final = 1024 * 1024
_MEMBER: Final = re.compile(r"^(postgres\.dump|nats/[A-Za-z0-9_-]+\.snapshot)$")


def stream_member(stream: str) -> str:
    return f"nats/{stream}.snapshot"


class ArchiveError(Exception):
    """The archive cannot be used (unreadable, truncated, altered, or from a newer tradebus)."""


class FileEntry(BaseModel):
    bytes: int
    sha256: str


class SavedStream(BaseModel):
    """A stream as snapshotted: what the restore request sends, and its durables for the record."""

    config: dict[str, Any]
    state: dict[str, Any]
    consumers: dict[str, int]
    """Each consumer's ack floor (stream sequence): where it resumes."""


class Manifest(BaseModel):
    format: int = FORMAT
    created_at: datetime
    tradebus_version: str
    nats_server: str
    postgres_server: str
    pg_dump: str
    pg_dump_major: int
    nats_url: str
    database_url: str
    """Where it was taken from, passwords redacted."""
    schemas: dict[str, int]
    """Each service schema's newest applied migration."""
    streams: dict[str, SavedStream]
    files: dict[str, FileEntry]


def checksum(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_COPY_BYTES):
            digest.update(block)
    return FileEntry(bytes=path.stat().st_size, sha256=digest.hexdigest())


def write(target: Path, manifest: Manifest, members: dict[str, Path]) -> None:
    """Write the archive to `target` atomically (a partial file is renamed once complete)."""
    partial = target.with_name(target.name + ".partial")
    body = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True).encode()
    with tarfile.open(partial, "w") as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(body)
        info.mtime = int(manifest.created_at.timestamp())
        tar.addfile(info, io.BytesIO(body))
        for name, path in sorted(members.items()):
            tar.add(path, arcname=name, recursive=False)
        digest = hashlib.sha256(body).hexdigest().encode()
        info = tarfile.TarInfo(MANIFEST_DIGEST)
        info.size = len(digest)
        info.mtime = int(manifest.created_at.timestamp())
        tar.addfile(info, io.BytesIO(digest))
    partial.replace(target)


def read(source: Path, into: Path) -> Manifest:
    """Check `source` completely and copy its members into the directory `into` (by their manifest
    names); the manifest. ArchiveError when anything is missing, extra, truncated or altered."""
    try:
        with tarfile.open(source, "r:") as tar:
            manifest, digest = _manifest(tar, source)
            seen: set[str] = set()
            for member in tar:  # from the first again: tarfile lists what it read already
                if member.name == MANIFEST:
                    continue
                if member.name == MANIFEST_DIGEST:
                    handle = tar.extractfile(member)
                    if handle is None or handle.read().decode(errors="replace").strip() != digest:
                        raise ArchiveError(f"{source}: {MANIFEST} does not match its checksum (corrupt archive)")
                    seen.add(member.name)
                    continue
                expected = manifest.files.get(member.name)
                if expected is None or not member.isfile():
                    raise ArchiveError(f"{source}: unexpected member {member.name!r}: not a tradebus backup")
                got = _copy(tar, member, into / member.name)
                if got != expected:
                    raise ArchiveError(f"{source}: {member.name} does not match its checksum (corrupt archive)")
                seen.add(member.name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
            raise ArchiveError(f"cannot read {source}: {exc.strerror}") from None
        raise ArchiveError(f"{source} is truncated or not a tar archive ({exc})") from None
    if missing := sorted({*manifest.files, MANIFEST_DIGEST} - seen):
        raise ArchiveError(f"{source} is truncated: {', '.join(missing)} missing")
    return manifest


def _manifest(tar: tarfile.TarFile, source: Path) -> tuple[Manifest, str]:
    """The first member, parsed, and its SHA-256."""
    first = tar.next()
    handle = tar.extractfile(first) if first is not None and first.name == MANIFEST else None
    if handle is None:
        raise ArchiveError(f"{source} has no {MANIFEST} first: not a tradebus backup")
    body = handle.read()
    try:
        raw = json.loads(body)
    except ValueError:
        raise ArchiveError(f"{source}: {MANIFEST} is not JSON (corrupt archive)") from None
    if isinstance(raw, dict) and isinstance(raw.get("format"), int) and raw["format"] > FORMAT:
        raise ArchiveError(f"{source} is backup format {raw['format']}; this tradebus reads up to {FORMAT}: upgrade it")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ArchiveError(f"{source}: {MANIFEST} is not a tradebus manifest ({exc.error_count()} errors)") from None
    if odd := [name for name in manifest.files if not _MEMBER.match(name)]:
        raise ArchiveError(f"{source}: unexpected member {odd[0]!r}: not a tradebus backup")
    return manifest, hashlib.sha256(body).hexdigest()


def _copy(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> FileEntry:
    handle = tar.extractfile(member)
    if handle is None:
        raise ArchiveError(f"{member.name} is not a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while block := handle.read(_COPY_BYTES):
            digest.update(block)
            size += len(block)
            out.write(block)
    return FileEntry(bytes=size, sha256=digest.hexdigest())
