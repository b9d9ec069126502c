"""Version ordering per ecosystem, as each package manager orders its versions.

``compare(ecosystem, a, b)`` is negative, zero or positive; a version the ecosystem
cannot parse raises :class:`Unordered` (the caller skips that record, never guesses).

- Debian: dpkg's ``epoch:upstream-revision`` with ``verrevcmp`` (``~`` before
  everything, letters before other characters, digit runs numerically).
- Alpine: apk-tools' order (numbers, a letter, ``_alpha`` < ``_beta`` < ``_pre`` <
  ``_rc`` < no suffix < ``_cvs`` < ``_svn`` < ``_git`` < ``_hg`` < ``_p``, ``-rN``).
- PyPI: PEP 440 through ``packaging``.
- npm (and OSV ``SEMVER`` ranges): semver 2.0.0 precedence.
"""

from __future__ import annotations

import re
from collections.abc import Callable


class Unordered(ValueError):
    """A version string the ecosystem's rules cannot order."""


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


# --- dpkg -----------------------------------------------------------------------------
def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return _sign(ac - bc)
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return _sign(first_diff)
    return 0


_DPKG_RE = re.compile(r"^(?:(\d+):)?([0-9][A-Za-z0-9.+~:-]*?)(?:-([A-Za-z0-9.+~]+))?$")


def _dpkg_parts(version: str) -> tuple[int, str, str]:
    match = _DPKG_RE.match(version.strip())
    if match is None:
        raise Unordered(f"not a Debian version: {version!r}")
    epoch, upstream, revision = match.groups()
    return int(epoch or 0), upstream, revision or ""


def dpkg_compare(a: str, b: str) -> int:
    ea, ua, ra = _dpkg_parts(a)
    eb, ub, rb = _dpkg_parts(b)
    if ea != eb:
        return _sign(ea - eb)
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


# --- apk ------------------------------------------------------------------------------
_APK_SUFFIXES = {"alpha": 0, "beta": 1, "pre": 2, "rc": 3, "cvs": 5, "svn": 6, "git": 7,
                 "hg": 8, "p": 9}
_APK_NONE = 4
_APK_RE = re.compile(r"^(\d+(?:\.\d+)*)([a-z]?)((?:_[a-z]+\d*)*)(?:-r(\d+))?$")


def _apk_key(version: str) -> tuple[list[int], str, list[tuple[int, int]], int]:
    match = _APK_RE.match(version.strip())
    if match is None:
        raise Unordered(f"not an apk version: {version!r}")
    numbers, letter, suffixes, release = match.groups()
    parsed = []
    for part in suffixes.split("_")[1:]:
        name = part.rstrip("0123456789")
        if name not in _APK_SUFFIXES:
            raise Unordered(f"not an apk version: {version!r} (suffix _{name})")
        parsed.append((_APK_SUFFIXES[name], int(part[len(name):] or 0)))
    return [int(n) for n in numbers.split(".")], letter, parsed, int(release or 0)


def apk_compare(a: str, b: str) -> int:
    na, la, sa, ra = _apk_key(a)
    nb, lb, sb, rb = _apk_key(b)
    if na != nb:
        return -1 if na < nb else 1
    if la != lb:
        return -1 if la < lb else 1
    for index in range(max(len(sa), len(sb))):
        xa = sa[index] if index < len(sa) else (_APK_NONE, 0)
        xb = sb[index] if index < len(sb) else (_APK_NONE, 0)
        if xa != xb:
            return -1 if xa < xb else 1
    return _sign(ra - rb)


# --- PEP 440 --------------------------------------------------------------------------
def pep440_compare(a: str, b: str) -> int:
    from packaging.version import InvalidVersion, Version

    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion as exc:
        raise Unordered(str(exc)) from None
    return -1 if va < vb else (1 if va > vb else 0)


# --- semver ---------------------------------------------------------------------------
_SEMVER_RE = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                        r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$")


def _semver_key(version: str) -> tuple[tuple[int, int, int], list[str] | None]:
    match = _SEMVER_RE.match(version.strip())
    if match is None:
        raise Unordered(f"not a semver version: {version!r}")
    major, minor, patch, pre = match.groups()
    return (int(major), int(minor), int(patch)), pre.split(".") if pre else None


def _identifier_compare(a: str, b: str) -> int:
    if a.isdigit() and b.isdigit():
        return _sign(int(a) - int(b))
    if a.isdigit() != b.isdigit():
        return -1 if a.isdigit() else 1  # numeric identifiers come first
    return -1 if a < b else (1 if a > b else 0)


def semver_compare(a: str, b: str) -> int:
    core_a, pre_a = _semver_key(a)
    core_b, pre_b = _semver_key(b)
    if core_a != core_b:
        return -1 if core_a < core_b else 1
    if pre_a is None or pre_b is None:  # a release follows its pre-releases
        return 0 if pre_a == pre_b else (1 if pre_a is None else -1)
    for x, y in zip(pre_a, pre_b, strict=False):
        if result := _identifier_compare(x, y):
            return result
    return _sign(len(pre_a) - len(pre_b))


COMPARATORS: dict[str, Callable[[str, str], int]] = {
    "Debian": dpkg_compare, "Alpine": apk_compare, "PyPI": pep440_compare, "npm": semver_compare,
    "Go": semver_compare,  # module versions are semver with a "v" (pseudo-versions too)
}


def compare(ecosystem: str, a: str, b: str) -> int:
    """``a`` against ``b`` in ``ecosystem`` (OSV's name; ``Debian:12`` is Debian's)."""
    comparator = COMPARATORS.get(ecosystem.split(":", 1)[0])
    if comparator is None:
        raise Unordered(f"no version order for the ecosystem {ecosystem!r}")
    return comparator(a, b)
