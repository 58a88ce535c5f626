"""Campaign content as blocks: a list of blocks (heading, Markdown text, button, image, event
details, divider, two columns, salutation with an opening paragraph) turned into the MJML +
Jinja that compose freezes, so delivery, tracking and the checks do not change.

Staff never type Jinja. What they write is text: every `{` in it is emitted as `{{ '{' }}`,
so `{{ … }}` or `{% … %}` typed into a block stays literal text. Personal values come from a
picker as placeholders such as `[[oslovení]]`, which become the Jinja expressions listed in
PLACEHOLDERS. Each problem names the block (and field) that caused it, in Czech; a problem
found later in the generated MJML is mapped back to its block through `BlockBody.block_at`.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt

BLOCKS_FILE = "blocks.json"
BLOCK_TYPES: dict[str, str] = {
    "opening": "Oslovení a úvod",
    "heading": "Nadpis",
    "text": "Text",
    "button": "Tlačítko",
    "image": "Obrázek",
    "event": "Údaje o akci",
    "divider": "Oddělovač",
    "columns": "Dva sloupce",
}
# Placeholder -> (Jinja expression, what staff see in the picker, needs an event campaign).
PLACEHOLDERS: dict[str, tuple[str, str, bool]] = {
    "oslovení": ("{{ salutation }}", "Oslovení (Vážená paní ředitelko,)", False),
    "jméno a příjmení": (
        "{{ contact.first_name }} {{ contact.last_name }}",
        "Jméno a příjmení kontaktu",
        False,
    ),
    "knihovna": ("{{ library.name }}", "Název knihovny", False),
    "obec": ("{{ library.town }}", "Obec knihovny", False),
    "název akce": ("{{ event.title }}", "Název akce", True),
    "datum akce": ("{{ event.start | datum }}", "Datum začátku akce", True),
    "místo akce": ("{{ event.venue }}", "Místo konání akce", True),
}
REGISTRATION = "registrace"  # a button or link target meaning the event's registration page
_PLACEHOLDER_RE = re.compile(r"\[\[([^\[\]\n]{1,40})\]\]")
_URL_RE = re.compile(r"^(https?://[^\s<>\"{}]+|mailto:[^\s<>\"{}]+)$")
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
_HEAD = """<mjml lang="cs">
  <mj-head>
    <mj-title>{{ subject }}</mj-title>
    <mj-preview>{{ preheader }}</mj-preview>
    <mj-include path="head.mjml" />
  </mj-head>
  <mj-body background-color="#f4f1ea" width="600px">
    <mj-include path="header.mjml" />"""
_TAIL = """    <mj-include path="footer.mjml" />
  </mj-body>
</mjml>
"""
_SECTION_OPEN = (
    '    <mj-section background-color="#ffffff" padding="12px 0px 4px 0px">\n      <mj-column>'
)
_SECTION_CLOSE = "      </mj-column>\n    </mj-section>"


@dataclass(frozen=True)
class BlockProblem:
    """One thing wrong with a block: its index (None: the whole campaign), field and message."""

    block: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"blok {self.block + 1}: " if self.block is not None else ""
        return f"{where}{self.message}"


@dataclass
class BlockBody:
    """The MJML made from blocks, and which block each of its lines came from."""

    mjml: str
    line_blocks: list[int | None] = field(default_factory=list)
    problems: list[BlockProblem] = field(default_factory=list)

    def block_at(self, line: int) -> int | None:
        """The block that produced line `line` (1-based) of the MJML, or None."""
        if 0 < line <= len(self.line_blocks):
            return self.line_blocks[line - 1]
        return None


@dataclass(frozen=True)
class Media:
    """What the image block needs to know about a stored image."""

    url: str
    width: int
    height: int


def _markdown() -> MarkdownIt:
    # CommonMark, raw HTML off (html=False escapes it); images only through the image block,
    # where alt text and the media library are enforced.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")


_MD = _markdown()


def escape_jinja(text: str) -> str:
    """Text in which Jinja sees no delimiter: each `{` is written as a Jinja string."""
    return text.replace("{", "{{ '{' }}")


def _placeholders(
    text: str, index: int, name: str, is_event: bool, problems: list[BlockProblem]
) -> str:
    """`[[knihovna]]` -> `{{ library.name }}` in text already made safe (escaped HTML, no
    Jinja); unknown placeholders are reported at the block."""

    def replace(match: re.Match[str]) -> str:
        key = html.unescape(match.group(1)).strip().lower()
        found = PLACEHOLDERS.get(key)
        if found is None:
            problems.append(
                BlockProblem(
                    index,
                    name,
                    f"neznámé pole [[{key}]]; vložte ho z nabídky „Vložit osobní údaj“",
                )
            )
            return match.group(0)
        expression, label, needs_event = found
        if needs_event and not is_event:
            problems.append(
                BlockProblem(index, name, f"pole „{label}“ jde použít jen u pozvánky na akci")
            )
            return match.group(0)
        return expression

    return _PLACEHOLDER_RE.sub(replace, text)


def _safe_text(
    text: str, index: int, name: str, is_event: bool, problems: list[BlockProblem]
) -> str:
    """Plain text for an MJML element: HTML-escaped, Jinja-escaped, placeholders filled."""
    return _placeholders(
        escape_jinja(html.escape(text, quote=False)), index, name, is_event, problems
    )


def render_markdown(
    text: str, index: int, name: str, is_event: bool, problems: list[BlockProblem]
) -> str:
    """Markdown (bold, italics, links, lists) as HTML with Jinja escaped and placeholders in."""
    rendered = _MD.render(text).strip()
    for href in re.findall(r'href="([^"]*)"', rendered):
        target = html.unescape(href)
        if target == REGISTRATION and is_event:
            continue
        if not _URL_RE.match(target):
            problems.append(
                BlockProblem(
                    index,
                    name,
                    f"odkaz „{target}“ musí začínat https:// nebo mailto:"
                    + (" (nebo použijte „registrace“)" if is_event else ""),
                )
            )
    # Markdown's own output holds no braces: every one was typed, so none may reach Jinja.
    rendered = escape_jinja(rendered)
    rendered = rendered.replace('href="registrace"', 'href="{{ event.registration_url }}"')
    rendered = _placeholders(rendered, index, name, is_event, problems)
    # Paragraphs without the browser's default margins, so spacing matches the shipped ones.
    return rendered.replace("<p>", '<p style="margin:0 0 12px 0;">')


def _url(value: str, index: int, name: str, is_event: bool, problems: list[BlockProblem]) -> str:
    value = value.strip()
    if value == REGISTRATION and is_event:
        return "{{ event.registration_url }}"
    if not value:
        problems.append(BlockProblem(index, name, "vyplňte adresu odkazu"))
        return ""
    if not _URL_RE.match(value):
        problems.append(
            BlockProblem(
                index,
                name,
                "adresa odkazu musí začínat https:// (nebo mailto:)"
                + ("; pro registraci na akci napište „registrace“" if is_event else ""),
            )
        )
        return ""
    return html.escape(value)


def _attr_color(value: Any, index: int, name: str, problems: list[BlockProblem]) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _COLOR_RE.match(value):
        problems.append(BlockProblem(index, name, "barva se zapisuje jako #rrggbb"))
        return None
    return value.lower()


def _text(block: dict[str, Any], key: str) -> str:
    value = block.get(key, "")
    return value if isinstance(value, str) else ""


def _opening(
    block: dict[str, Any],
    index: int,
    is_event: bool,
    openings: dict[str, str],
    problems: list[BlockProblem],
) -> list[str]:
    default = _text(block, "markdown")
    if not default.strip():
        problems.append(BlockProblem(index, "markdown", "napište úvodní odstavec"))
    lines = ["        <mj-text>", '          <p style="margin:0 0 12px 0;">{{ salutation }}</p>']
    branches = [(step, text) for step, text in openings.items() if text.strip()]
    for number, (step, text) in enumerate(branches):
        keyword = "if" if number == 0 else "elif"
        lines.append(f'          {{% {keyword} step.name == "{step}" %}}')
        lines.append(
            "          " + render_markdown(text, index, f"opening:{step}", is_event, problems)
        )
    if branches:
        lines.append("          {% else %}")
    lines.append("          " + render_markdown(default, index, "markdown", is_event, problems))
    if branches:
        lines.append("          {% endif %}")
    lines.append("        </mj-text>")
    return lines


def _event_details(index: int, is_event: bool, problems: list[BlockProblem]) -> list[str]:
    if not is_event:
        problems.append(
            BlockProblem(index, "type", "údaje o akci jdou jen do pozvánky na akci (typ kampaně)")
        )
        return []
    cell = (
        "padding:4px 12px 4px 0;font-weight:bold;vertical-align:top;white-space:nowrap;width:48px;"
    )
    return [
        "        <mj-text>",
        '          <table role="presentation" cellpadding="0" cellspacing="0" '
        'style="width:100%;border-collapse:collapse;">',
        f'            <tr><td style="{cell}">Kdy</td><td style="padding:4px 0;">'
        "{{ event.start | datum_den }} v {{ event.start | cas }}"
        "{% if event.end.date() != event.start.date() %} až {{ event.end | datum }}{% endif %}"
        '{% if "start" in event.to_be_confirmed %} (termín bude potvrzen){% endif %}</td></tr>',
        f'            <tr><td style="{cell}">Kde</td><td style="padding:4px 0;">'
        "{{ event.venue }}{% if event.address %}, {{ event.address }}{% endif %}"
        '{% if "venue" in event.to_be_confirmed %} (místo bude potvrzeno){% endif %}</td></tr>',
        "          </table>",
        '          <p style="margin:12px 0 0 0;">Přihlásit se můžete na '
        '<a href="{{ event.registration_url }}">stránce registrace</a>. '
        "Do kalendáře si akci uložíte z přílohy tohoto e-mailu.</p>",
        "        </mj-text>",
    ]


def _image(
    block: dict[str, Any],
    index: int,
    media: dict[str, Media],
    is_event: bool,
    problems: list[BlockProblem],
) -> list[str]:
    ref = _text(block, "image")
    alt = _text(block, "alt").strip()
    found = media.get(ref)
    if found is None:
        problems.append(
            BlockProblem(index, "image", "vyberte obrázek z knihovny obrázků (nebo nahrajte nový)")
        )
    if not alt:
        problems.append(
            BlockProblem(
                index,
                "alt",
                "doplňte popis obrázku (alternativní text): čtou ho čtečky a programy, "
                "které obrázky nezobrazují",
            )
        )
    if found is None:
        return []
    width = min(552, max(1, found.width // 2 if found.width > 552 else found.width))
    attrs = [
        f'src="{html.escape(found.url)}"',
        f'alt="{escape_jinja(html.escape(alt))}"',
        f'width="{width}px"',
        'padding="8px 24px"',
    ]
    link = _text(block, "url").strip()
    if link:
        attrs.append(f'href="{_url(link, index, "url", is_event, problems)}"')
    return [f"        <mj-image {' '.join(attrs)} />"]


def blocks_to_mjml(
    document: dict[str, Any], *, is_event: bool, media: dict[str, Media] | None = None
) -> BlockBody:
    """The body MJML for a blocks document ({"blocks": [...], "openings": {step: markdown}})."""
    media = media or {}
    problems: list[BlockProblem] = []
    blocks = document.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        problems.append(BlockProblem(None, "blocks", "kampaň nemá žádný obsah; přidejte blok"))
        blocks = []
    raw_openings = document.get("openings") or {}
    openings = (
        {str(k): v for k, v in raw_openings.items() if isinstance(v, str)}
        if isinstance(raw_openings, dict)
        else {}
    )
    out: list[tuple[str, int | None]] = [(line, None) for line in _HEAD.splitlines()]
    out.extend((line, None) for line in _SECTION_OPEN.splitlines())
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            problems.append(BlockProblem(index, "type", "neznámý druh bloku"))
            continue
        lines = _block_lines(block, index, is_event, openings, media, problems)
        out.extend((part, index) for line in lines for part in line.split("\n"))
    out.extend((line, None) for line in _SECTION_CLOSE.splitlines())
    out.extend((line, None) for line in _TAIL.splitlines())
    mjml = "\n".join(line for line, _ in out) + "\n"
    return BlockBody(mjml, [b for _, b in out], problems)


def _block_lines(
    block: dict[str, Any],
    index: int,
    is_event: bool,
    openings: dict[str, str],
    media: dict[str, Media],
    problems: list[BlockProblem],
) -> list[str]:
    kind = block["type"]
    if kind == "opening":
        return _opening(block, index, is_event, openings, problems)
    if kind == "heading":
        text = _text(block, "text").strip()
        if not text:
            problems.append(BlockProblem(index, "text", "nadpis je prázdný"))
        size = ' font-size="19px"' if block.get("level") == 2 else ""
        safe = _safe_text(text, index, "text", is_event, problems)
        return [f'        <mj-text mj-class="nadpis"{size}>{safe}</mj-text>']
    if kind == "text":
        text = _text(block, "markdown")
        if not text.strip():
            problems.append(BlockProblem(index, "markdown", "text je prázdný"))
        return [
            "        <mj-text>",
            "          " + render_markdown(text, index, "markdown", is_event, problems),
            "        </mj-text>",
        ]
    if kind == "button":
        label = _text(block, "label").strip()
        if not label:
            problems.append(BlockProblem(index, "label", "napište text tlačítka"))
        href = _url(_text(block, "url"), index, "url", is_event, problems)
        attrs = f'mj-class="tlacitko" href="{href}"'
        background = _attr_color(block.get("background"), index, "background", problems)
        color = _attr_color(block.get("color"), index, "color", problems)
        if background:
            attrs += f' background-color="{background}"'
        if color:
            attrs += f' color="{color}"'
        safe = _safe_text(label, index, "label", is_event, problems)
        return [f"        <mj-button {attrs}>{safe}</mj-button>"]
    if kind == "image":
        return _image(block, index, media, is_event, problems)
    if kind == "event":
        return _event_details(index, is_event, problems)
    if kind == "divider":
        return [
            '        <mj-divider border-color="#d9d3c7" border-width="1px" padding="14px 24px" />'
        ]
    # Two columns: the current section ends, a section of two columns follows, then a new
    # section continues (an `if` around a column would break widths; none is used here).
    left, right = _text(block, "left"), _text(block, "right")
    if not left.strip() or not right.strip():
        problems.append(BlockProblem(index, "left", "vyplňte oba sloupce"))
    return [
        *_SECTION_CLOSE.splitlines(),
        '    <mj-section background-color="#ffffff" padding="4px 0px">',
        "      <mj-column>",
        "        <mj-text>",
        "          " + render_markdown(left, index, "left", is_event, problems),
        "        </mj-text>",
        "      </mj-column>",
        "      <mj-column>",
        "        <mj-text>",
        "          " + render_markdown(right, index, "right", is_event, problems),
        "        </mj-text>",
        "      </mj-column>",
        "    </mj-section>",
        *_SECTION_OPEN.splitlines(),
    ]


def load_document(text: str) -> dict[str, Any]:
    """blocks.json as a dict (ValueError with a Czech message when it is not one)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"blocks.json není platný JSON (řádek {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise ValueError("blocks.json musí obsahovat objekt s klíčem blocks")
    return data


def dump_document(document: dict[str, Any]) -> str:
    """blocks.json as written to a revision: stable key order, readable in a git diff."""
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
