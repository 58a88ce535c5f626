"""Bodies as quoted-printable templates: campaign-level values rendered into a frozen body
beforehand, and the finalizers that encode each per-recipient value as it is filled in, so
one render is the encoded part. Our own links pass through them unexamined (`SafeLink`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
import jinja2.meta

from mailer.compose.message import SAFE_QP_LINE, qp_value

_EXPRESSION_RE = re.compile(r"\{\{.*?\}\}", re.S)
_SCOPE_RE = re.compile(r"\{%-?\s*(set|with|macro|call|import|from|include)\b")
_FOR_TARGETS_RE = re.compile(r"\{%-?\s*for\s+([\w\s,]+?)\s+in\b")


def prerender_fixed(source: str, values: Mapping[str, Any], env: jinja2.Environment) -> str:
    """The template with each `{{ … }}` that uses only campaign-level values (sender, event,
    campaign, step…) replaced by its text, so recipients do not pay for it again. Templates that
    bind names themselves (set, with, macros, loops over those names) are left as they are."""
    if _SCOPE_RE.search(source):
        return source
    for targets in _FOR_TARGETS_RE.findall(source):
        if {t.strip() for t in targets.split(",")} & set(values):
            return source
    names = set(values) | set(env.globals)

    def replace(match: re.Match[str]) -> str:
        tag = match.group(0)
        try:
            used = jinja2.meta.find_undeclared_variables(env.parse(tag))
            if not used or not used <= names:
                return tag
            text = env.from_string(tag).render(values)
        except Exception:
            return tag  # left to render per recipient (and to fail there, if it must)
        return tag if ("{" in text or "}" in text) else text

    return _EXPRESSION_RE.sub(replace, source)


_NEEDS_ESCAPE = re.compile(r"[&<>\"']")
# A link of ours is the base URL, a short path and a token: the longest must still fit a line.
_LINK_ROOM = 40


class SafeLink(str):
    """A per-recipient link built from a base URL checked once (`link_maker`) and a base64url
    token: nothing in it to escape or to quoted-printable encode, so the finalizers pass it
    through without looking (about 20 of them a message)."""

    __slots__ = ()


def link_maker(base_url: str) -> Callable[[str], str]:
    """`SafeLink` when every link under `base_url` is safe as it is, else plain `str`."""
    safe = (
        base_url.isascii()
        and base_url.isprintable()
        and not _NEEDS_ESCAPE.search(base_url)
        and "=" not in base_url
        and " " not in base_url
        and not base_url.startswith(".")
        and len(base_url) + _LINK_ROOM <= SAFE_QP_LINE
    )
    return SafeLink if safe else str


def html_qp_value(value: Any) -> str:
    # Autoescaping by hand (this environment cannot autoescape: it must encode after escaping),
    # on plain str: Markup objects would slow every later string step.
    if type(value) is SafeLink:
        return value + "=\r\n"
    if type(value) is str:
        return qp_value(html.escape(value) if _NEEDS_ESCAPE.search(value) else value)
    if hasattr(value, "__html__"):
        return qp_value(str(value.__html__()))
    return qp_value(html.escape(str(value)))  # str() of StrictUndefined raises, as it should


def text_qp_value(value: Any) -> str:
    if type(value) is SafeLink:
        return value + "=\r\n"
    return qp_value(str(value))


def template_constants(template: jinja2.Template) -> list[str]:
    """The literal text of a compiled template: the string constants of its code objects."""
    found: list[str] = []

    def walk(code: Any) -> None:
        for const in code.co_consts:
            if isinstance(const, str):
                found.append(const)
            elif hasattr(const, "co_consts"):
                walk(const)

    for func in (template.root_render_func, *template.blocks.values()):
        walk(func.__code__)
    return found
