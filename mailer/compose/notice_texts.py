"""The wording of a transactional message as templates staff may edit: its fields, checking
staff's text before it is saved (Czech problems naming the field and line), and filling it
with one message's values in a sandboxed Jinja environment.

The wording renders to plain text: the shared layout escapes it when it fills the HTML part
(the Composer's HTML environment autoescapes) and leaves it as it is in the text part, so a
library called „R&D <Knihovna>“ reads the same in both."""

from __future__ import annotations

import dataclasses
import re
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from mailer.compose.transactional import Notice

# Longest text one field may hold; the form refuses more before it gets here.
FIELD_LIMIT = 5000
# Fields shown on one line (headers, the heading, the button): line breaks become spaces.
ONE_LINE = ("subject", "preheader", "heading", "greeting", "button_label")
LIST_FIELDS = ("paragraphs", "after")
FIELD_LABELS = {
    "subject": "Předmět",
    "preheader": "Text za předmětem",
    "heading": "Nadpis",
    "greeting": "Oslovení",
    "paragraphs": "Odstavec",
    "button_label": "Text tlačítka",
    "after": "Závěrečný řádek",
    "why": "Proč zprávu dostáváte",
}
# A message without these would be broken or unlawful (every message says why it came).
REQUIRED = ("subject", "heading", "paragraphs", "button_label", "why")


@dataclass(frozen=True)
class Wording:
    """What a message says, each field a template over the kind's placeholders. An empty
    greeting means the recipient's vocative salutation; a paragraph or closing line that
    renders empty is left out."""

    subject: str
    heading: str
    paragraphs: tuple[str, ...]
    button_label: str
    why: str
    preheader: str = ""
    greeting: str = ""
    after: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Wording:
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            raw = data.get(item.name, "")
            if item.name in LIST_FIELDS:
                values[item.name] = tuple(str(x) for x in (raw or []))
            else:
                values[item.name] = str(raw or "")
        return cls(**values)

    def fields(self) -> Iterator[tuple[str, str, int | None]]:
        """(field, template, position from 1 in a list field, else None), in form order."""
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name in LIST_FIELDS:
                for position, text in enumerate(value, 1):
                    yield item.name, text, position
            else:
                yield item.name, value, None


def field_label(name: str, position: int | None) -> str:
    label = FIELD_LABELS[name]
    return f"{label} {position}" if position is not None else label


@dataclass(frozen=True)
class WordingProblem:
    """One thing wrong with staff's wording, in Czech."""

    field: str
    position: int | None
    line: int | None
    message: str

    def __str__(self) -> str:
        where = field_label(self.field, self.position)
        if self.line is not None:
            where += f", řádek {self.line}"
        return f"{where}: {self.message}"


class WordingError(ValueError):
    """A wording that cannot be filled; `problem` says where and why."""

    def __init__(self, problem: WordingProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _environment() -> SandboxedEnvironment:
    # Sandboxed: staff's text may not reach Python objects; StrictUndefined: a misspelt
    # placeholder fails instead of vanishing from the message.
    env = SandboxedEnvironment(
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.globals.clear()  # range, lipsum, cycler, joiner, namespace: nothing a text needs
    return env


# What a wording may be made of: placeholders, conditions and a few filters, so a text grows
# at most linearly with its source. The sandbox keeps a text away from Python objects but not
# from building a huge text or looping for hours (`'x' * 10**9`, `9**9**9`, nested `range`
# loops, `center(10**9)`, chained `replace('', …)`, `{% set %}` doubling a variable again and
# again, recursive macros), which would hang the save and every later message; none of these
# are needed to word a message, so they are refused before anything renders.
_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.Name,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Neg,
    nodes.Pos,
    nodes.Tuple,
    nodes.List,
    nodes.Getitem,
    nodes.Getattr,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
)
_ALLOWED_FILTERS = frozenset(
    {"capitalize", "d", "default", "first", "last", "length", "lower", "string", "title"}
    | {"trim", "upper", "striptags", "wordcount", "count"}
)


def _allowed_filter(node: nodes.Filter) -> bool:
    # Only `default` takes an argument (the fallback text); widths and counts could grow a text.
    arguments = 1 if node.name in {"d", "default"} else 0
    return (
        node.name in _ALLOWED_FILTERS
        and len(node.args) <= arguments
        and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
    )


def _forbidden(parsed: nodes.Template) -> nodes.Node | None:
    """The first construct in `parsed` that a wording may not use, or None."""
    for node in parsed.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            return node
        if isinstance(node, nodes.Filter) and not _allowed_filter(node):
            return node
    return None


_ENV = _environment()

_SYNTAX_MESSAGES = (
    ("unexpected end of template", "šablona skončila uprostřed příkazu (chybí {% endif %}?)"),
    ("unexpected '}'", "přebývá nebo chybí složená závorka"),
    ("unexpected char", "nepovolený znak uvnitř {{ … }}"),
    ("expected token 'end of print statement'", "uvnitř {{ … }} smí být jen zástupný text"),
    ("Encountered unknown tag", "neznámý příkaz v {% … %}"),
    ("unexpected 'end of template'", "šablona skončila uprostřed {{ … }}"),
)


def _syntax_message(exc: jinja2.TemplateSyntaxError) -> str:
    text = exc.message or ""
    for english, czech in _SYNTAX_MESSAGES:
        if english in text:
            return f"chyba v zápisu: {czech}"
    return "chyba v zápisu zástupného textu; zkontrolujte {{ … }} a {% … %}"


def _runtime_line(exc: BaseException) -> int | None:
    # Jinja rewrites tracebacks so the template's own frames carry its line numbers.
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<template>":
            found = frame.lineno
    return found


def _listed(names: Mapping[str, Any]) -> str:
    return ", ".join("{{ " + name + " }}" for name in names) or "žádné"


def _render_field(source: str, values: Mapping[str, Any], field: str, position: int | None) -> str:
    def problem(line: int | None, message: str) -> WordingError:
        return WordingError(WordingProblem(field, position, line, message))

    try:
        parsed = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise problem(exc.lineno, _syntax_message(exc)) from exc
    forbidden = _forbidden(parsed)
    if forbidden is not None:
        raise problem(forbidden.lineno, "tato operace není v textu povolená")
    unknown = meta.find_undeclared_variables(parsed) - set(values)
    if unknown:
        first = min(
            (n for n in parsed.find_all(nodes.Name) if n.name in unknown),
            key=lambda n: n.lineno,
        )
        raise problem(
            first.lineno,
            "neznámý zástupný text {{ " + first.name + " }} — dostupné: " + _listed(values),
        )
    try:
        rendered = _ENV.from_string(parsed).render(values)
    except SecurityError as exc:
        raise problem(_runtime_line(exc), "tato operace není v textu povolená") from exc
    except jinja2.UndefinedError as exc:
        raise problem(
            _runtime_line(exc),
            "zástupný text nemá takovou část; použijte ho celý — dostupné: " + _listed(values),
        ) from exc
    except Exception as exc:  # any other failure of staff's template is the text's problem
        raise problem(_runtime_line(exc), "text nelze vyplnit, zkontrolujte zápis") from exc
    if field in ONE_LINE:
        rendered = " ".join(rendered.split())
    return rendered.strip()


def render_wording(wording: Wording, values: Mapping[str, Any]) -> Wording:
    """`wording` filled with one message's values. Raises WordingError at the first field
    that does not render or a required one that comes out empty."""
    out: dict[str, Any] = {name: [] for name in LIST_FIELDS}
    for field, source, position in wording.fields():
        if len(source) > FIELD_LIMIT:
            raise WordingError(
                WordingProblem(field, position, None, f"text je delší než {FIELD_LIMIT} znaků")
            )
        text = _render_field(source, values, field, position)
        if field in LIST_FIELDS:
            if text:
                out[field].append(text)
        else:
            out[field] = text
    for field in REQUIRED:
        if not out[field]:
            message = (
                "zpráva musí mít alespoň jeden odstavec"
                if field == "paragraphs"
                else "nesmí zůstat prázdné"
            )
            raise WordingError(WordingProblem(field, None, None, message))
    return Wording(
        **{k: tuple(v) if k in LIST_FIELDS else v for k, v in out.items()}  # type: ignore[arg-type]
    )


def check_wording(wording: Wording, samples: Mapping[str, Any]) -> list[WordingProblem]:
    """Every field's problem (at most one a field) with the kind's sample values; empty when
    the wording may be saved."""
    problems = []
    for field, source, position in wording.fields():
        try:
            render_wording(_single(field, source), samples)
        except WordingError as exc:
            problems.append(dataclasses.replace(exc.problem, position=position))
    if not problems:
        try:
            render_wording(wording, samples)
        except WordingError as exc:
            problems.append(exc.problem)
    return problems


def _single(field: str, source: str) -> Wording:
    """A wording where only `field` is staff's, the rest trivially valid, to check it alone."""
    base: dict[str, Any] = {
        "subject": "x",
        "heading": "x",
        "paragraphs": ("x",),
        "button_label": "x",
        "why": "x",
    }
    if field in LIST_FIELDS:
        base[field] = (source,) if field == "after" else (source, "x")
    else:
        base[field] = source if source or field not in REQUIRED else " "
    return Wording(**base)


def apply_wording(notice: Notice, wording: Wording) -> Notice:
    """`notice` saying `wording` filled with the notice's own values (WordingError if not)."""
    filled = render_wording(wording, notice.values)
    return dataclasses.replace(
        notice,
        subject=filled.subject,
        preheader=filled.preheader,
        heading=filled.heading,
        greeting=filled.greeting,
        paragraphs=list(filled.paragraphs),
        button_label=filled.button_label,
        after=list(filled.after),
        why=filled.why,
    )


def split_paragraphs(text: str) -> tuple[str, ...]:
    """A form's textarea: paragraphs separated by an empty line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return tuple(p.strip() for p in re.split(r"\n[ \t]*\n", text) if p.strip()) if text else ()


def join_paragraphs(paragraphs: tuple[str, ...] | list[str]) -> str:
    return "\n\n".join(paragraphs)
