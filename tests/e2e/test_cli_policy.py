"""`tarhold policy ...` on embedded storage: rules by hand, and OSV advisories from a directory or a zip.

Advisories are built here as the OSV databases write them (json.dumps of
real-shaped records); nothing is fetched.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from tests.e2e.test_cli_admin import no_bootstrap, ok, storage, tarhold

__all__ = ["no_bootstrap", "storage"]  # fixtures, used by name


def advisory(advisory_id: str, modified: str, *affected: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "schema_version": "1.5.0", "id": advisory_id, "modified": modified, "published": "2024-01-01T00:00:00Z",
        "summary": f"summary of {advisory_id}", "details": "details", "affected": list(affected), **more,
    }


def affected(name: str, *events: dict[str, str], ecosystem: str = "npm") -> dict[str, Any]:
    return {"package": {"ecosystem": ecosystem, "name": name}, "ranges": [{"type": "SEMVER", "events": list(events)}]}


MALWARE = advisory("MAL-2024-100", "2024-02-01T00:00:00Z", affected("@evil/stealer", {"introduced": "0"}))
VULNERABLE = advisory(
    "GHSA-abcd-efgh-ijkl", "2024-02-01T00:00:00Z", affected("minimist", {"introduced": "0"}, {"fixed": "1.2.6"})
)
PYPI = advisory("PYSEC-2024-7", "2024-02-01T00:00:00Z", affected("requests", {"introduced": "0"}, ecosystem="PyPI"))


def rules(storage: Path) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in json.loads(ok(tarhold(storage, "policy", "list", "--json")))}


def test_block_list_and_remove_a_rule_by_hand(storage: Path) -> None:
    block = tarhold(storage, "policy", "block", "@acme/ui@>=2.0.0 <2.0.3", "--reason", "bad release",
                    "--expires", "30d", "--strategy", "replace")
    rule_id = ok(block).strip()
    assert rule_id.startswith("r-") and "blocked @acme/ui@>=2.0.0 <2.0.3 (bad release) until" in block.stderr
    scope_id = ok(tarhold(storage, "policy", "allow", "@acme", "--reason", "ours")).strip()

    listing = ok(tarhold(storage, "policy", "list"))
    assert listing.splitlines()[0].split() == ["ID", "KIND", "TARGET", "VERSIONS", "REASON", "EXPIRES", "SOURCE", "BY"]
    lines = {line.split()[0]: line for line in listing.splitlines()[1:]}
    assert lines[rule_id].split()[1:3] == ["block", "@acme/ui"] and ">=2.0.0 <2.0.3" in lines[rule_id]
    assert lines[scope_id].split()[1:4] == ["allow", "@acme", "(all)"] and "runtime  cli" in lines[scope_id]

    removed = ok(tarhold(storage, "policy", "rm", rule_id))
    assert f"removed block rule {rule_id}: @acme/ui@>=2.0.0 <2.0.3" in removed
    again = tarhold(storage, "policy", "rm", rule_id)
    assert again.returncode == 1 and f"no policy rule {rule_id}" in again.stderr
    bad_range = tarhold(storage, "policy", "block", "lodash@>>1", "--reason", "typo")
    assert bad_range.returncode == 2 and "not a semver range" in bad_range.stderr and bad_range.stdout == ""
    no_range = tarhold(storage, "policy", "block", "lodash@", "--reason", "typo")
    assert no_range.returncode == 2 and "nothing after the @" in no_range.stderr and no_range.stdout == ""


def write_zip(path: Path, records: dict[str, dict[str, Any] | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in records.items():
            archive.writestr(name, content if isinstance(content, bytes) else json.dumps(content))
    return path


def summary_of(result: Any) -> str:
    return ok(result).strip().splitlines()[-1]


def test_import_osv_from_a_directory_then_a_zip_is_idempotent_updates_and_withdraws(
    storage: Path, tmp_path: Path
) -> None:
    feed = tmp_path / "osv"
    (feed / "npm" / "MAL").mkdir(parents=True)
    (feed / "npm" / "MAL" / "MAL-2024-100.json").write_text(json.dumps(MALWARE))
    (feed / "npm" / "GHSA-abcd-efgh-ijkl.json").write_text(json.dumps(VULNERABLE))
    (feed / "PYSEC-2024-7.json").write_text(json.dumps(PYPI))
    (feed / "broken.json").write_text("{not json")
    (feed / "README.md").write_text("not an advisory, not read")
    own = ok(tarhold(storage, "policy", "block", "minimist", "--reason", "ours")).strip()

    first = tarhold(storage, "policy", "import-osv", str(feed))
    assert summary_of(first) == "3 advisories read: 2 added, 0 updated, 0 unchanged, 0 removed, 1 skipped"
    assert "broken.json: not JSON" in first.stderr
    stored = rules(storage)
    assert set(stored) == {own, "osv-MAL-2024-100", "osv-GHSA-abcd-efgh-ijkl"}
    malware = stored["osv-MAL-2024-100"]
    assert (malware["kind"], malware["package"], malware.get("versions"), malware["source"], malware["by"]) == (
        "block", "@evil/stealer", None, "osv", "osv-import",
    )
    assert malware["reason"] == "MAL-2024-100: summary of MAL-2024-100" and malware["advisory"] == "MAL-2024-100"
    assert stored["osv-GHSA-abcd-efgh-ijkl"]["versions"] == "<1.2.6"

    same = write_zip(tmp_path / "same.zip", {"osv/MAL-2024-100.json": MALWARE, "osv/GHSA.json": VULNERABLE})
    assert summary_of(tarhold(storage, "policy", "import-osv", str(same))) == (
        "2 advisories read: 0 added, 0 updated, 2 unchanged, 0 removed, 0 skipped"
    )

    revised = advisory(
        "GHSA-abcd-efgh-ijkl", "2024-05-01T00:00:00Z",
        affected("minimist", {"introduced": "0"}, {"fixed": "0.2.4"}, {"introduced": "1.0.0"}, {"fixed": "1.2.6"}),
    )
    withdrawn = {**MALWARE, "modified": "2024-05-02T00:00:00Z", "withdrawn": "2024-05-02T00:00:00Z"}
    bomb = b"{" + b" " * 2_000_000 + b"}"  # more than the per-advisory limit; compresses to little
    changes = write_zip(tmp_path / "changes.zip", {
        "GHSA-abcd-efgh-ijkl.json": revised, "MAL-2024-100.json": withdrawn, "big.json": bomb,
    })
    assert summary_of(tarhold(storage, "policy", "import-osv", str(changes))) == (
        "2 advisories read: 0 added, 1 updated, 0 unchanged, 1 removed, 1 skipped"
    )
    stored = rules(storage)
    assert set(stored) == {own, "osv-GHSA-abcd-efgh-ijkl"}
    ghsa = stored["osv-GHSA-abcd-efgh-ijkl"]
    assert ghsa["versions"] == "<0.2.4 || >=1.0.0 <1.2.6" and ghsa["advisory_modified"] == "2024-05-01T00:00:00Z"
    assert stored[own]["source"] == "runtime" and stored[own]["reason"] == "ours"

    # The older directory again does not roll the update back (a withdrawn advisory leaves no
    # trace, so its block comes back: the safe side), and a path that is no feed exits 2.
    assert summary_of(tarhold(storage, "policy", "import-osv", str(feed))) == (
        "3 advisories read: 1 added, 0 updated, 1 unchanged, 0 removed, 1 skipped"
    )
    missing = tarhold(storage, "policy", "import-osv", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr

