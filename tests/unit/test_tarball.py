"""Reading a published tarball in one streaming pass."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from registry.domain import tarball
from registry.domain.errors import PublishError
from registry.domain.tarball import inspect_tarball

Files = dict[str, "bytes | str | dict[str, Any]"]


def make_tarball(files: Files, *, root: str = "package", directories: bool = True) -> bytes:
    """A real-shaped npm tarball: gzipped tar, every entry under `root/`.

    Values are bytes, text, or a dict written as JSON (for package.json).
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        if directories and root:
            folder = tarfile.TarInfo(root)
            folder.type = tarfile.DIRTYPE
            folder.mode = 0o755
            archive.addfile(folder)
        for path, content in files.items():
            if isinstance(content, dict):
                data = json.dumps(content).encode()
            elif isinstance(content, str):
                data = content.encode()
            else:
                data = content
            info = tarfile.TarInfo(f"{root}/{path}" if root else path)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def manifest(name: str = "left-pad", version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, **extra}


def test_the_manifest_file_count_and_unpacked_size_are_read() -> None:
    data = make_tarball({
        "package.json": manifest(description="pads"),
        "index.js": "module.exports = 1\n",
        "lib/util.js": b"x" * 100,
    })
    facts = inspect_tarball(io.BytesIO(data))
    assert facts.manifest == manifest(description="pads")
    assert facts.file_count == 3
    package_json_size = len(json.dumps(manifest(description="pads")).encode())
    assert facts.unpacked_size == package_json_size + len("module.exports = 1\n") + 100
    assert facts.has_shrinkwrap is False


def test_a_path_is_read_as_well_as_a_file_object(tmp_path: Path) -> None:
    path = tmp_path / "left-pad-1.0.0.tgz"
    path.write_bytes(make_tarball({"package.json": manifest()}))
    assert inspect_tarball(path).manifest["version"] == "1.0.0"
    assert inspect_tarball(str(path)).file_count == 1


def test_the_top_folder_may_have_any_name_as_npm_strips_it() -> None:
    data = make_tarball({"package.json": manifest(), "index.js": ""}, root="left-pad")
    assert inspect_tarball(io.BytesIO(data)).manifest["name"] == "left-pad"


def test_dot_slash_prefixed_entries_are_understood() -> None:
    data = make_tarball({"package.json": manifest()}, root="./package")
    assert inspect_tarball(io.BytesIO(data)).manifest["name"] == "left-pad"


def test_the_package_folder_wins_over_another_top_folder() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        entries = (("other/package.json", manifest(name="other")), ("package/package.json", manifest()))
        for path, body in entries:
            data = json.dumps(body).encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert inspect_tarball(io.BytesIO(buffer.getvalue())).manifest["name"] == "left-pad"


def test_a_nested_package_json_is_not_the_manifest() -> None:
    data = make_tarball({"node_modules/dep/package.json": manifest(name="dep"), "index.js": ""})
    with pytest.raises(PublishError) as caught:
        inspect_tarball(io.BytesIO(data))
    assert caught.value.status == 422


def test_a_top_level_package_json_outside_any_folder_is_not_the_manifest() -> None:
    data = make_tarball({"package.json": manifest()}, root="", directories=False)
    with pytest.raises(PublishError) as caught:
        inspect_tarball(io.BytesIO(data))
    assert caught.value.status == 422


def test_a_shrinkwrap_is_noticed() -> None:
    data = make_tarball({"package.json": manifest(), "npm-shrinkwrap.json": {"lockfileVersion": 3}})
    assert inspect_tarball(io.BytesIO(data)).has_shrinkwrap is True


def test_folders_are_not_counted_as_files() -> None:
    data = make_tarball({"package.json": manifest(), "lib/a.js": "", "lib/b.js": ""})
    assert inspect_tarball(io.BytesIO(data)).file_count == 3


def test_a_byte_order_mark_before_package_json_is_ignored() -> None:
    data = make_tarball({"package.json": b"\xef\xbb\xbf" + json.dumps(manifest()).encode()})
    assert inspect_tarball(io.BytesIO(data)).manifest["name"] == "left-pad"


def test_a_missing_package_json_is_refused() -> None:
    data = make_tarball({"index.js": "1"})
    with pytest.raises(PublishError) as caught:
        inspect_tarball(io.BytesIO(data))
    assert caught.value.status == 422
    assert "package.json" in caught.value.message


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'"text"'])
def test_a_package_json_that_is_not_a_json_object_is_refused(content: bytes) -> None:
    data = make_tarball({"package.json": content})
    with pytest.raises(PublishError) as caught:
        inspect_tarball(io.BytesIO(data))
    assert caught.value.status == 422


@pytest.mark.parametrize(
    "data",
    [b"", b"definitely not gzip", gzip.compress(b"not a tar archive at all" * 40)],
    ids=["empty", "not-gzip", "gzip-of-garbage"],
)
def test_data_that_is_not_a_gzipped_tar_is_refused(data: bytes) -> None:
    with pytest.raises(PublishError) as caught:
        inspect_tarball(io.BytesIO(data))
    assert caught.value.status == 400


def test_a_truncated_tarball_is_refused() -> None:
    data = make_tarball({"package.json": manifest(), "big.bin": bytes(range(256)) * 400})
    with pytest.raises(PublishError) as caught:
        inspect_tarball(io.BytesIO(data[: len(data) // 2]))
    assert caught.value.status == 400


def test_an_oversized_package_json_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tarball, "MAX_MANIFEST_BYTES", 64)
    data = make_tarball({"package.json": manifest(description="x" * 100)})
    with pytest.raises(PublishError) as caught:
        inspect_tarball(io.BytesIO(data))
    assert caught.value.status == 422
    assert "larger" in caught.value.message


def test_reading_stops_after_the_entry_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tarball, "MAX_ENTRIES", 5)
    files: Files = {"package.json": manifest()}
    files.update({f"f{i}.js": "" for i in range(10)})
    with pytest.raises(PublishError) as caught:
        inspect_tarball(io.BytesIO(make_tarball(files)))
    assert caught.value.status == 422
    assert "entries" in caught.value.message


def test_the_archive_is_read_as_a_stream_without_seeking() -> None:
    class ForwardOnly(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self._inner.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

        def seekable(self) -> bool:
            return False

        def seek(self, *args: Any) -> int:
            raise OSError("not seekable")

    data = make_tarball({"package.json": manifest(), "index.js": "x"})
    assert inspect_tarball(ForwardOnly(data)).file_count == 2  # type: ignore[arg-type]
