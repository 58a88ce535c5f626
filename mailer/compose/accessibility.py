"""Accessibility of a campaign body, checked before any launch: the message says it is Czech
(`lang="cs"`), every image has alt text, no link is called "zde" or "klikněte sem", and text
and buttons reach a WCAG contrast of at least 4.5:1.

Contrast is computed from the MJML colour attributes as MJML resolves them: the element's own
attribute, its `mj-class`, the `mj-attributes` default of its tag, `mj-all`, then MJML's own
default; the background is that of the nearest enclosing column, section or wrapper, else the
body. Colours set inside raw HTML (`style="color:…"`) are not followed.
"""

from __future__ import annotations

import html
import re
import xml.parsers.expat
from collections.abc import Callable
from dataclasses import dataclass

MIN_CONTRAST = 4.5
# Link texts that say nothing out of context (WCAG 2.4.4); compared lowercased, trimmed.
VAGUE_LINK_TEXTS = frozenset(
    {"zde", "sem", "tady", "klikněte", "klikněte zde", "klikněte sem", "klikni zde", "klikni sem"}
)
# MJML's own defaults where mj-attributes says nothing.
_MJML_DEFAULTS = {
    ("mj-text", "color"): "#000000",
    ("mj-button", "color"): "#ffffff",
    ("mj-button", "background-color"): "#414141",
}
_BACKGROUND_TAGS = ("mj-column", "mj-section", "mj-wrapper", "mj-hero")
_INCLUDE_RE = re.compile(r'<mj-include\s+path="([^"]+)"\s*(?:/>|>\s*</mj-include>)')
_JINJA_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_ENDING = ("mj-text", "mj-button", "mj-raw", "mj-table", "mj-style", "mj-navbar-link")
_HEX_RE = re.compile(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_NAMED = {"white": "#ffffff", "black": "#000000", "transparent": ""}


@dataclass(frozen=True)
class Finding:
    """One accessibility problem at a line of a file."""

    file: str
    line: int
    message: str


def relative_luminance(color: str) -> float:
    """WCAG 2.x relative luminance of #rgb / #rrggbb."""
    value = color.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG contrast ratio (1 to 21) of two colours."""
    a, b = relative_luminance(foreground), relative_luminance(background)
    lighter, darker = max(a, b), min(a, b)
    return (lighter + 0.05) / (darker + 0.05)


def _color(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    value = _NAMED.get(value, value)
    return value if _HEX_RE.match(value) else None


def expand(
    file: str, text: str, load: Callable[[str], tuple[str, str] | None], depth: int = 0
) -> list[tuple[str, str, int]]:
    """The body's lines with partials spliced in, each with the file and line it came from."""
    out: list[tuple[str, str, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _INCLUDE_RE.search(line) if depth < 10 else None
        found = load(match.group(1)) if match else None
        if match is None or found is None:
            out.append((line, file, number))
            continue
        name, partial = found
        out.append((line[: match.start()], file, number))
        out.extend(expand(name, partial, load, depth + 1))
        out.append((line[match.end() :], file, number))
    return out


def _blank(text: str) -> str:
    return re.sub(r"[^\n]", " ", text)


def _masked(text: str) -> str:
    text = _JINJA_RE.sub(lambda m: _blank(m.group(0)), text)
    names = "|".join(_ENDING)
    ending = re.compile(rf"(<({names})(?:\s[^>]*)?(?<!/)>)(.*?)(</\2\s*>)", re.S)
    text = ending.sub(lambda m: m.group(1) + _blank(m.group(3)) + m.group(4), text)
    return re.sub(r"&(?!(?:amp|lt|gt|quot|apos);|#)[A-Za-z][A-Za-z0-9]*;", " ", text)


def check_structure(lines: list[tuple[str, str, int]]) -> list[Finding]:
    """lang, alt on mj-image, and contrast, from the expanded MJML lines."""
    source = "\n".join(line for line, _, _ in lines)
    origin = [(file, number) for _, file, number in lines]
    findings: list[Finding] = []

    def at(line: int, message: str) -> None:
        file, number = origin[min(max(line, 1), len(origin)) - 1] if origin else ("", 1)
        findings.append(Finding(file, number, message))

    defaults: dict[tuple[str, str], str] = {}
    classes: dict[str, dict[str, str]] = {}
    stack: list[tuple[str, dict[str, str]]] = []
    checks: list[tuple[int, str, dict[str, str], list[dict[str, str]]]] = []
    saw_root = False
    parser = xml.parsers.expat.ParserCreate()

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal saw_root
        line = parser.CurrentLineNumber
        in_attributes = any(t == "mj-attributes" for t, _ in stack)
        stack.append((tag, attrs))
        if tag == "mjml":
            saw_root = True
            if attrs.get("lang", "").lower() != "cs":
                at(line, 'zpráva musí mít jazyk češtinu: <mjml lang="cs">')
            return
        if in_attributes:
            if tag == "mj-class":
                classes[attrs.get("name", "")] = {k: v for k, v in attrs.items() if k != "name"}
            else:
                for key, value in attrs.items():
                    defaults[(tag, key)] = value
            return
        if tag == "mj-image" and not attrs.get("alt", "").strip():
            at(line, "obrázek nemá popis (atribut alt); čtečky a programy bez obrázků ho čtou")
        if tag in ("mj-text", "mj-button"):
            checks.append((line, tag, attrs, [a for t, a in stack[:-1] if t in _BACKGROUND_TAGS]))
        if tag == "mj-body":
            checks.append((0, "mj-body", attrs, []))

    def end(_tag: str) -> None:
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(_masked(source), True)
    except xml.parsers.expat.ExpatError:
        return findings  # the MJML check reports malformed MJML with its line

    if not saw_root:
        at(1, 'zpráva musí začínat <mjml lang="cs">')

    def resolve(tag: str, attrs: dict[str, str], key: str) -> str | None:
        if key in attrs:
            return attrs[key]
        for name in reversed(attrs.get("mj-class", "").split()):
            if key in classes.get(name, {}):
                return classes[name][key]
        return defaults.get(
            (tag, key), defaults.get(("mj-all", key), _MJML_DEFAULTS.get((tag, key)))
        )

    body_bg = "#ffffff"
    for _line, tag, attrs, _ in checks:
        if tag == "mj-body":
            body_bg = _color(resolve("mj-body", attrs, "background-color")) or "#ffffff"
    for line, tag, attrs, ancestors in checks:
        if tag == "mj-body":
            continue
        foreground = _color(resolve(tag, attrs, "color"))
        if tag == "mj-button":
            background = _color(resolve(tag, attrs, "background-color"))
            what = "text tlačítka"
        else:
            background = None
            for ancestor in reversed(ancestors):
                background = _color(ancestor.get("background-color"))
                if background:
                    break
            background = background or body_bg
            what = "text"
        if not foreground or not background:
            continue
        ratio = contrast_ratio(foreground, background)
        if ratio < MIN_CONTRAST:
            at(
                line,
                f"{what} má nízký kontrast {ratio:.1f}:1 ({foreground} na {background}); "
                f"potřeba je aspoň {MIN_CONTRAST}:1",
            )
    return findings


_ANCHOR_RE = re.compile(r"<a\b[^>]*>(.*?)</a>", re.S | re.I)
_IMG_RE = re.compile(r"<img\b([^>]*)>", re.I)
_TAG_RE = re.compile(r"<[^>]+>")


def check_html(compiled: str) -> list[str]:
    """Problems only the compiled HTML shows: vague link texts, <img> without alt."""
    problems: list[str] = []
    head = compiled[:2000].lower()
    if 'lang="cs"' not in head:
        problems.append('zpráva nemá jazyk češtinu (lang="cs")')
    for match in _ANCHOR_RE.finditer(compiled):
        text = html.unescape(_TAG_RE.sub("", match.group(1)))
        text = " ".join(text.split()).strip(" .,:;!").lower()
        if text in VAGUE_LINK_TEXTS:
            problems.append(
                f"odkaz s textem „{text}“ neříká, kam vede; napište, co na odkazu je "
                "(např. „program konference“)"
            )
    for match in _IMG_RE.finditer(compiled):
        if not re.search(r"\balt\s*=", match.group(1)):
            problems.append("obrázek bez atributu alt")
    return problems
