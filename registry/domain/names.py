"""Package names and tarball file names, as the npm registry spells them.

`validate_package_name` follows npm's `validate-npm-package-name` for *new*
packages (its errors and its warnings both refuse), plus a few rules that
keep a name safe as a storage key: no `..` anywhere and no scope that starts
with a dot or an underscore.

Tarball file names follow the npm registry: `{unscoped name}-{version}.tgz`,
so `@acme/ui@1.0.0` is stored and served as `@acme/ui/-/ui-1.0.0.tgz`.
"""

from __future__ import annotations

import re

import semver

from registry.domain.errors import PublishError

MAX_NAME_LENGTH = 214

# Names npm refuses outright, compared case-insensitively.
EXCLUDED_NAMES = frozenset({"node_modules", "favicon.ico"})

# Node.js core module names (node's `builtinModules` without the `_`-prefixed
# internals and the `x/y` subpaths, which fail other rules anyway). npm warns
# about these, and a warning makes a name invalid for new packages.
CORE_MODULES = frozenset({
    "assert", "async_hooks", "buffer", "child_process", "cluster", "console",
    "constants", "crypto", "dgram", "diagnostics_channel", "dns", "domain",
    "events", "fs", "http", "http2", "https", "inspector", "module", "net",
    "os", "path", "perf_hooks", "process", "punycode", "querystring",
    "readline", "repl", "stream", "string_decoder", "sys", "timers", "tls",
    "trace_events", "tty", "url", "util", "v8", "vm", "wasi",
    "worker_threads", "zlib",
})

# What JavaScript's encodeURIComponent leaves unchanged.
URL_SAFE = re.compile(r"[A-Za-z0-9\-_.!~*'()]+")
# npm no longer allows these in the (unscoped part of the) name.
LEGACY_SPECIALS = re.compile(r"[~'!()*]")
SCOPED = re.compile(r"@([^/]+)/([^/]+)")


def _refuse(name: str, reasons: list[str]) -> None:
    raise PublishError(400, f"invalid package name {name!r}: " + "; ".join(reasons))


def package_name_problems(name: str) -> list[str]:
    """Every reason npm (and tarhold's storage) would refuse `name` for a new package."""
    if not isinstance(name, str):
        return ["name must be a string"]
    problems: list[str] = []
    if not name:
        return ["name length must be greater than zero"]
    if name.startswith("."):
        problems.append("name cannot start with a period")
    if name.startswith("_"):
        problems.append("name cannot start with an underscore")
    if name.strip() != name:
        problems.append("name cannot contain leading or trailing spaces")
    if name.lower() in EXCLUDED_NAMES:
        problems.append(f"{name.lower()} is not a valid package name")
    if name.lower() in CORE_MODULES:
        problems.append(f"{name} is a core module name")
    if len(name) > MAX_NAME_LENGTH:
        problems.append(f"name can no longer contain more than {MAX_NAME_LENGTH} characters")
    if name.lower() != name:
        problems.append("name can no longer contain capital letters")
    if LEGACY_SPECIALS.search(name.split("/")[-1]):
        problems.append("name can no longer contain special characters (\"~'!()*\")")
    if ".." in name:
        problems.append("name cannot contain '..'")
    if not URL_SAFE.fullmatch(name):
        scoped = SCOPED.fullmatch(name)
        if scoped is None:
            problems.append("name can only contain URL-friendly characters")
        else:
            scope, package = scoped.groups()
            if package.startswith("."):
                problems.append("name cannot start with a period")
            if scope.startswith((".", "_")):
                problems.append("scope cannot start with a period or an underscore")
            if not (URL_SAFE.fullmatch(scope) and URL_SAFE.fullmatch(package)):
                problems.append("name can only contain URL-friendly characters")
    return problems


def validate_package_name(name: str) -> None:
    """Raise PublishError(400) unless `name` is valid for a new npm package."""
    problems = package_name_problems(name)
    if problems:
        _refuse(name, list(dict.fromkeys(problems)))


def split_scope(name: str) -> tuple[str | None, str]:
    """`@acme/ui` → (`@acme`, `ui`); `left-pad` → (None, `left-pad`)."""
    if name.startswith("@") and "/" in name:
        scope, _, rest = name.partition("/")
        return scope, rest
    return None, name


def tarball_filename(name: str, version: str) -> str:
    """The registry's tarball file name: `ui-1.0.0.tgz` for `@acme/ui@1.0.0`."""
    return f"{split_scope(name)[1]}-{version}.tgz"


def parse_tarball_filename(name: str, filename: str) -> str | None:
    """The version that `filename` is the tarball of, or None if it isn't one of `name`'s.

    The rest after `{unscoped name}-` must be a strict semver version, so
    `foo-bar-1.0.0.tgz` belongs to `foo-bar`, never to `foo`.
    """
    prefix = split_scope(name)[1] + "-"
    if not is_safe_filename(filename) or not filename.startswith(prefix):
        return None
    version = filename[len(prefix):-len(".tgz")]
    try:
        semver.Version.parse(version)
    except ValueError:
        return None
    return version


def is_safe_filename(filename: str) -> bool:
    """True for a plain `*.tgz` file name that is safe as the last part of a storage key."""
    return (
        isinstance(filename, str)
        and len(filename) > len(".tgz")
        and filename.endswith(".tgz")
        and not filename.startswith(".")
        and "/" not in filename
        and "\\" not in filename
        and ".." not in filename
        and filename.isprintable()
    )


# npm's semver range grammar (non-loose), enough to tell a tag from a range.
_XR = r"(?:0|[1-9]\d*|x|X|\*)"
_PRE = r"(?:-(?:0|[1-9]\d*|\d*[A-Za-z-][A-Za-z0-9-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][A-Za-z0-9-]*))*)"
_BUILD = r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)"
_XRANGE = rf"[v=]*{_XR}(?:\.{_XR}(?:\.{_XR}{_PRE}?{_BUILD}?)?)?"
_COMPARATOR = re.compile(rf"(?:(?:[<>]=?|=)?|~>?|\^){_XRANGE}")
_HYPHEN = re.compile(rf"\s*({_XRANGE})\s+-\s+({_XRANGE})\s*")
_OPERATOR_SPACE = re.compile(r"(<=|>=|<|>|=|~>|~|\^)\s+")


def is_semver_range(text: str) -> bool:
    """True when npm's `semver.validRange(text)` would accept `text` (`1`, `^2.0`, `x`, `>=1 <2`)."""
    for part in re.split(r"\s*\|\|\s*", text.strip()):
        if not part or _HYPHEN.fullmatch(part):
            continue
        tokens = _OPERATOR_SPACE.sub(r"\1", part).split()
        if not all(_COMPARATOR.fullmatch(token) for token in tokens):
            return False
    return True


def validate_dist_tag(tag: str) -> None:
    """Raise PublishError(400) unless `tag` may name a dist-tag.

    As npm: a tag must not parse as a semver range (`npm install pkg@1`
    would be ambiguous), and it is a URL path segment, so URL-safe only.
    """
    if not isinstance(tag, str) or not tag:
        _refuse_tag(str(tag), "a dist-tag must be a non-empty string")
    if len(tag) > MAX_NAME_LENGTH or not URL_SAFE.fullmatch(tag):
        _refuse_tag(tag, "a dist-tag can only contain URL-friendly characters")
    if is_semver_range(tag):
        _refuse_tag(tag, "a dist-tag must not be a valid semver range")


def _refuse_tag(tag: str, reason: str) -> None:
    raise PublishError(400, f"invalid dist-tag {tag!r}: {reason}")
