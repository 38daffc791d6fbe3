"""Package sets, search results and audit answers of the fake upstream registry.

Pure functions over the documents of `tests.support.fake_upstream_docs`: the
package sets behind `FakeUpstream.add_tree` and `add_large_packument`, the
`/-/v1/search` answer, and the two npm audit endpoints, which report one
known-vulnerable package.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import semver

from tests.support.fake_upstream_docs import CLOCK_START, MAINTAINER, Doc, iso

# The one package the fake's audit endpoints report, and what they report.
VULNERABLE_PACKAGE = "vulnerable-pkg"
VULNERABLE_RANGE = "<2.0.0"
ADVISORY: Doc = {
    "id": 1099001,
    "url": "https://advisories.example.com/GHSA-fake-0001",
    "title": "Prototype pollution in vulnerable-pkg",
    "severity": "high",
    "vulnerable_versions": VULNERABLE_RANGE,
    "cwe": ["CWE-1321"],
    "cvss": {"score": 7.5, "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"},
}


# -- package sets --------------------------------------------------------------

TreeSpec = dict[str, dict[str, Doc]]  # name -> version -> manifest fields


def tree_spec(root: str, size: int) -> TreeSpec:
    """`size` packages reachable from `root`: a binary tree of modules, a shared
    leaf every module and the extras depend on with different but compatible
    ranges (newest 1.x satisfies all of them; `latest` is 2.0.0, which none
    accept), one scoped package, one CLI with a `bin`.
    """
    if size < 5:
        raise ValueError("add_tree needs size >= 5: root, leaf, scoped, cli and one module")
    scope = root.lstrip("@").replace("/", "-")
    leaf, scoped, cli = f"{root}-leaf", f"@{scope}/scoped", f"{root}-cli"
    modules = [f"{root}-mod-{index}" for index in range(size - 4)]
    leaf_ranges = ["^1.0.0", "^1.2.0", "~1.4.0", ">=1.1.0 <2.0.0", "1.x"]

    spec: TreeSpec = {
        leaf: {v: {"description": "shared leaf"} for v in ("1.0.0", "1.2.0", "1.4.1", "2.0.0")},
    }
    for index, module in enumerate(modules):
        deps = {child: "^1.0.0" for child in modules[2 * index + 2 : 2 * index + 4]}
        deps[leaf] = leaf_ranges[index % len(leaf_ranges)]
        spec[module] = {
            "1.0.0": {"description": f"module {index}", "dependencies": deps},
            "1.1.0": {"description": f"module {index}", "dependencies": deps, "keywords": ["fake", "tree"]},
        }
    spec[scoped] = {"1.0.0": {"description": "scoped package", "dependencies": {leaf: "^1.2.0"}}}
    spec[cli] = {
        "0.9.0": {"description": "command line tool", "bin": {cli: "bin/cli.js"}, "dependencies": {leaf: "^1.0.0"}},
        "1.0.0": {
            "description": "command line tool",
            "bin": {cli: "bin/cli.js"},
            "dependencies": {leaf: "^1.0.0", scoped: "^1.0.0"},
            "engines": {"node": ">=18"},
        },
    }
    root_deps = {module: "^1.0.0" for module in modules[:2]}
    root_deps.update({scoped: "^1.0.0", cli: "^1.0.0"})
    spec[root] = {
        "1.0.0": {"description": "tree root", "dependencies": root_deps},
        "1.1.0": {"description": "tree root", "dependencies": root_deps, "scripts": {"test": "node index.js"}},
    }
    return {name: spec[name] for name in [root, *modules, scoped, cli, leaf]}


def large_versions(name: str, count: int) -> dict[str, Doc]:
    """`count` versions with manifests as heavy as popular packages carry."""
    deps = {f"{name}-dep-{index}": f"^{index}.0.0" for index in range(8)}
    dev_deps = {f"{name}-devtool-{index}": f"~{index}.1.0" for index in range(10)}
    versions: dict[str, Doc] = {}
    for index in range(count):
        version = f"{index // 100}.{(index // 10) % 10}.{index % 10}"
        versions[version] = {
            "description": f"{name}: a heavily released package, release number {index}",
            "keywords": ["fake", "large", "packument", "many", "versions"],
            "author": {"name": "Fake Author", "email": "author@example.com", "url": "https://example.com"},
            "repository": {"type": "git", "url": f"git+https://git.example.com/{name}.git"},
            "bugs": {"url": f"https://git.example.com/{name}/issues"},
            "homepage": f"https://example.com/{name}",
            "engines": {"node": ">=14"},
            "scripts": {"test": "node test.js", "build": "node build.js --production", "lint": "eslint ."},
            "dependencies": deps,
            "devDependencies": dev_deps,
            "gitHead": hashlib.sha1(f"{name}{version}".encode()).hexdigest(),
        }
    return versions


def large_readme(name: str) -> str:
    section = (
        "This paragraph is here to make the readme long, as the readmes of popular "
        "packages are: usage, options, examples, changelog, and more. "
    ) * 8
    return f"# {name}\n\n" + "\n\n".join(f"## Section {n}\n\n{section}" for n in range(60)) + "\n"


# -- search and audit ----------------------------------------------------------


def search_results(docs: Iterable[Doc], text: str, size: int, offset: int) -> Doc:
    """`/-/v1/search` over the given packuments: a case-insensitive match of
    every word of `text` against name, description and keywords.
    """
    words = [word.lower() for word in text.split()]
    matches: list[Doc] = []
    for doc in docs:
        latest = doc["versions"].get(doc["dist-tags"].get("latest", ""), {})
        haystack = " ".join([doc["name"], latest.get("description", ""), *latest.get("keywords", [])]).lower()
        if all(word in haystack for word in words):
            matches.append(_search_object(doc, latest, exact=doc["name"].lower() == text.lower()))
    matches.sort(key=lambda item: (-item["searchScore"], item["package"]["name"]))
    return {
        "objects": matches[offset : offset + size],
        "total": len(matches),
        "time": iso(CLOCK_START),
    }


def _search_object(doc: Doc, latest: Doc, *, exact: bool) -> Doc:
    name = doc["name"]
    package: Doc = {
        "name": name,
        "version": latest.get("version", ""),
        "description": latest.get("description", ""),
        "keywords": latest.get("keywords", []),
        "date": doc["time"].get(latest.get("version", ""), doc["time"]["modified"]),
        "links": {"homepage": doc["homepage"]},
        "publisher": {"username": MAINTAINER["name"], "email": MAINTAINER["email"]},
        "maintainers": [{"username": MAINTAINER["name"], "email": MAINTAINER["email"]}],
    }
    if name.startswith("@"):
        package["scope"] = name[1:].split("/", 1)[0]
    else:
        package["scope"] = "unscoped"
    score = 1.0 if exact else 0.5
    return {
        "package": package,
        "score": {"final": score, "detail": {"quality": 0.9, "popularity": 0.1, "maintenance": 0.9}},
        "searchScore": score * 100,
        "flags": {"insecure": 0},
    }


def _vulnerable(version: str) -> bool:
    try:
        return semver.Version.parse(version).match(VULNERABLE_RANGE)
    except ValueError:
        return False


def bulk_advisories(body: Any) -> Doc:
    """`POST /-/npm/v1/security/advisories/bulk`: `{name: [versions]}` in,
    `{name: [advisory]}` out, only for `vulnerable-pkg` below 2.0.0.
    """
    if not isinstance(body, Mapping):
        return {}
    versions = body.get(VULNERABLE_PACKAGE) or []
    if any(_vulnerable(str(version)) for version in versions):
        return {VULNERABLE_PACKAGE: [dict(ADVISORY)]}
    return {}


def quick_audit(body: Any) -> Doc:
    """`POST /-/npm/v1/security/audits/quick`: the npm-audit report shape, with
    the one advisory when the dependency tree holds a vulnerable `vulnerable-pkg`.
    """
    found: list[str] = []
    total = 0
    stack = [body.get("dependencies") or {}] if isinstance(body, Mapping) else []
    while stack:
        deps = stack.pop()
        for dep_name, dep in deps.items():
            total += 1
            if not isinstance(dep, Mapping):
                continue
            if dep_name == VULNERABLE_PACKAGE and _vulnerable(str(dep.get("version", ""))):
                found.append(str(dep["version"]))
            stack.append(dep.get("dependencies") or {})
    advisories: Doc = {}
    if found:
        advisories[str(ADVISORY["id"])] = {
            **ADVISORY,
            "module_name": VULNERABLE_PACKAGE,
            "patched_versions": ">=2.0.0",
            "findings": [{"version": version, "paths": [VULNERABLE_PACKAGE]} for version in sorted(set(found))],
        }
    counts = {"info": 0, "low": 0, "moderate": 0, "high": len(advisories), "critical": 0}
    return {
        "actions": [],
        "advisories": advisories,
        "muted": [],
        "metadata": {
            "vulnerabilities": counts,
            "dependencies": total,
            "devDependencies": 0,
            "optionalDependencies": 0,
            "totalDependencies": total,
        },
    }
