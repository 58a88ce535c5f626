"""Blueprint validation before anything is sent: every problem with its file and line.

mjml-python compiles whatever it is given (unknown tags and attributes pass silently), Jinja
fails only at render time, and some MJML + Jinja mixtures break silently (DESIGN.md). So this
module checks, per campaign: the TOML against the Blueprint schema (sending window included),
the segment and reminder audiences, each MJML file (well-formed, known mj-* tags and
attributes, the known gotchas), Jinja syntax, every variable defined, and finally a trial
render of every step.
"""

from __future__ import annotations

import re
import tomllib
import traceback
import xml.parsers.expat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from mailer.audience.segments import SegmentError, parse_segment
from mailer.compose.accessibility import check_html, check_structure, expand
from mailer.compose.campaigns import (
    Blueprint,
    BlueprintError,
    blueprint_data,
    blueprint_slugs,
    campaigns_dir,
    stored_base,
)
from mailer.compose.check_messages import (
    FilterProblem,
    checked_filters,
    expat_message,
    explain_undefined,
)
from mailer.compose.mjml_schema import (
    ENDING_TAGS,
    MJML_ATTRIBUTES,
    PARENTS,
)
from mailer.compose.window import WindowError

ENGAGEMENT_FIELDS = (
    "received",
    "opened",
    "clicked",
    "registered",
    "attending",
    "attending_session",
    "joined",
)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a blueprint, where it is."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# --- TOML --------------------------------------------------------------------------------

_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(#.*)?$")
_KEY_RE = re.compile(r'^\s*("[^"]*"|[A-Za-z0-9_\-]+)\s*=')


def toml_key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Line of each key and table: ("event", "sessions", 0, "start") -> 12 (1-based).

    A small line finder: tomllib gives values but no positions."""
    lines: dict[tuple[Any, ...], int] = {}
    counters: dict[tuple[Any, ...], int] = {}
    current: tuple[Any, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header:
            parts = tuple(p.strip().strip('"') for p in header.group(2).split("."))
            if header.group(1) == "[[":
                # Array of tables: index within the parent path as it stands.
                parent = _resolve(parts[:-1], current)
                key = (*parent, parts[-1])
                counters[key] = counters.get(key, -1) + 1
                current = (*key, counters[key])
            else:
                current = _resolve(parts, current)
            lines.setdefault(current, number)
            continue
        assignment = _KEY_RE.match(line)
        if assignment:
            name = assignment.group(1).strip('"')
            lines.setdefault((*current, name), number)
    return lines


def _resolve(parts: tuple[str, ...], current: tuple[Any, ...]) -> tuple[Any, ...]:
    # `[[event.sessions]]` after `[event]`: sub-tables of an array element keep its index.
    out: list[Any] = []
    for part in parts:
        out.append(part)
        prefix = tuple(out)
        if len(current) > len(prefix) and current[: len(prefix)] == prefix:
            nxt = current[len(prefix)]
            if isinstance(nxt, int):
                out.append(nxt)
    return tuple(out)


def _line_for(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    # Blueprint.steps[0] is the implicit launch; steps[i] is the (i-1)th [[reminder]].
    if loc and loc[0] == "steps":
        loc = (
            ("reminder", loc[1] - 1, *loc[2:])
            if len(loc) > 1 and isinstance(loc[1], int)
            else ("reminder",)
        )
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return 1


def check_toml(path: Path, slug: str) -> tuple[Blueprint | None, list[Problem], dict[str, Any]]:
    """Parse and validate campaign.toml; the Blueprint when valid."""
    from pydantic import ValidationError

    from mailer.settings import get_settings

    name = str(path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        return None, [Problem(name, int(match.group(1)) if match else 1, f"TOML: {exc}")], {}
    lines = toml_key_lines(text)
    data = blueprint_data(slug, raw, path.parent)
    settings = get_settings()
    data.setdefault("from_name", settings.sender_name)
    data.setdefault("from_email", settings.sender_email)
    data.setdefault("reply_to", data.get("from_email") or settings.sender_email)
    try:
        return Blueprint.model_validate(data), [], raw
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            msg = err.get("msg", "neplatná hodnota").removeprefix("Value error, ")
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, WindowError):
                # The window's message names its key already; point at that key's line.
                line = _line_for(lines, (*loc, cause.key) if cause.key else loc)
                problems.append(Problem(name, line, msg))
                continue
            where = ".".join(str(p) for p in loc) or "kampaň"
            problems.append(Problem(name, _line_for(lines, loc), f"{where}: {msg}"))
        return None, problems, raw


# --- segments ------------------------------------------------------------------------------


def _check_engagement(
    node: Any, steps: list[str], where: str, problems: list[str], sessions: int = 0
) -> Any:
    """What the segment parser cannot know about engagement fields: `received` must name an
    earlier step of this campaign, `attending_session` a session of its event (1 to
    `sessions`), and the others are true or false."""
    if isinstance(node, list):
        return [_check_engagement(n, steps, where, problems, sessions) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ENGAGEMENT_FIELDS:
            if key == "received":
                wanted = value if isinstance(value, list) else [value]
                for v in wanted:
                    if v not in steps:
                        problems.append(
                            f"{where}: received = {v!r} neodpovídá žádnému dřívějšímu kroku "
                            f"(kroky: {', '.join(steps)})"
                        )
            elif key == "attending_session":
                wanted = value if isinstance(value, list) else [value]
                for v in wanted:
                    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= sessions:
                        problems.append(
                            f"{where}: attending_session = {v!r} není číslo termínu akce "
                            f"(1 až {sessions})"
                        )
            elif not isinstance(value, bool):
                problems.append(f"{where}: {key} musí být true nebo false")
            continue
        out[key] = _check_engagement(value, steps, where, problems, sessions)
    return out


def check_segments(path: Path, blueprint: Blueprint, raw_text: str) -> list[Problem]:
    """The campaign segment and every reminder audience, through the audience module."""
    lines = toml_key_lines(raw_text)
    name = str(path)
    problems: list[Problem] = []
    try:
        parse_segment(blueprint.segment)
    except SegmentError as exc:
        problems.append(Problem(name, lines.get(("segment",), 1), f"segment: {exc}"))
    sessions = len(blueprint.event.occurrences()) if blueprint.event is not None else 0
    series_seen: set[str] = set()
    for position, step in enumerate(blueprint.steps[1:], start=1):
        if step.series is not None:
            # One series, one written audience: checked once, under the name staff wrote.
            if step.series in series_seen:
                continue
            series_seen.add(step.series)
        index = blueprint.reminder_index(step)
        line = lines.get(("reminder", index, "audience"), lines.get(("reminder", index), 1))
        where = f"připomínka {step.series or step.name}, audience"
        earlier = [s.name for s in blueprint.steps[:position]]
        messages: list[str] = []
        _check_engagement(step.audience, earlier, where, messages, sessions)
        problems.extend(Problem(name, line, m) for m in messages)
        try:
            parse_segment(step.audience)
        except SegmentError as exc:
            problems.append(Problem(name, line, f"{where}: {exc}"))
    return problems


# --- MJML ----------------------------------------------------------------------------------

_JINJA_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_ENTITY_RE = re.compile(r"&(?!(?:amp|lt|gt|quot|apos);|#)[A-Za-z][A-Za-z0-9]*;")
_BLOCK_START_RE = re.compile(r"^\{%-?\s*(if|for)\b")


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _blank(segment: str) -> str:
    # Same length and newlines, so expat's line numbers stay those of the file.
    return re.sub(r"[^\n]", " ", segment)


def _scan_jinja(text: str) -> Iterator[tuple[re.Match[str], str]]:
    """Each Jinja region with where it stands: "text", "tag" (attribute position),
    "attr" (inside a quoted attribute value) or "comment"."""
    state = "text"
    quote = ""
    i = 0
    n = len(text)
    while i < n:
        if text.startswith(("{{", "{%", "{#"), i):
            match = _JINJA_RE.match(text, i)
            if match is None:
                return  # unclosed: the Jinja syntax check reports it
            yield match, ("attr" if quote else state)
            i = match.end()
            continue
        ch = text[i]
        if state == "comment":
            if text.startswith("-->", i):
                state = "text"
                i += 3
                continue
        elif state == "text":
            if text.startswith("<!--", i):
                state = "comment"
                i += 4
                continue
            if ch == "<" and i + 1 < n and (text[i + 1].isalpha() or text[i + 1] in "/?!"):
                state = "tag"
        elif state == "tag":
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == ">":
                state = "text"
        i += 1


def _mask(text: str, problems: list[tuple[int, str]]) -> str:
    """Text for the XML parser: Jinja blanked (statements in text become processing
    instructions, to be seen between elements), raw HTML in ending tags blanked."""
    out: list[str] = []
    last = 0
    for match, where in _scan_jinja(text):
        region = match.group(0)
        line = _line_of(text, match.start())
        out.append(text[last : match.start()])
        last = match.end()
        if where == "tag":
            problems.append(
                (
                    line,
                    f"Jinja v pozici atributu značky ({region[:40]}) rozbije MJML; "
                    "dejte ji do hodnoty atributu nebo do obsahu",
                )
            )
            out.append(_blank(region))
        elif where == "text" and "<" in region:
            problems.append(
                (
                    line,
                    f"znak „<“ uvnitř Jinja mimo atribut ({region[:40]}) rozbije MJML; "
                    "použijte např. „>“ s prohozenými stranami",
                )
            )
            out.append(_blank(region))
        elif where == "text" and region.startswith("{%") and len(region) >= 5:
            inner = _blank(region[3:-2])
            out.append("<?j" + inner + "?>")
        else:
            out.append(_blank(region))
    out.append(text[last:])
    masked = "".join(out)
    # Ending tags hold raw HTML (may be HTML, not XML): blank their content.
    names = "|".join(sorted(ENDING_TAGS, key=len, reverse=True))
    ending = re.compile(rf"(<({names})(?:\s[^>]*)?(?<!/)>)(.*?)(</\2\s*>)", re.S)
    masked = ending.sub(lambda m: m.group(1) + _blank(m.group(3)) + m.group(4), masked)
    return _ENTITY_RE.sub(lambda m: " " * len(m.group(0)), masked)


def check_mjml(
    path: Path,
    *,
    is_body: bool,
    include_dirs: list[Path],
    seen: set[Path] | None = None,
    parent: str | None = None,
) -> list[Problem]:
    """Well-formedness, known tags and attributes, includes, and the Jinja/MJML gotchas."""
    seen = seen if seen is not None else set()
    seen.add(path.resolve())
    name = str(path)
    text = path.read_text(encoding="utf-8")
    found: list[tuple[int, str]] = []
    problems: list[Problem] = []
    try:
        jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError:
        return []  # check_jinja reports it; masking broken Jinja would only add noise

    if is_body:
        stripped = text.lstrip()
        if not stripped.startswith("<mjml"):
            pos = len(text) - len(stripped)
            found.append(
                (_line_of(text, pos), "před <mjml> nesmí nic být (ani Jinja ani komentář)")
            )

    masked = _mask(text, found)
    gotcha = bool(found)
    # Partials may hold several top-level elements: give them a root for the parser.
    wrapped = masked if is_body else f"<mj-partial>{masked}</mj-partial>"
    stack: list[str] = []
    includes: list[tuple[int, str, str | None]] = []
    parser = xml.parsers.expat.ParserCreate()

    def start(tag: str, attrs: dict[str, str]) -> None:
        line = parser.CurrentLineNumber
        container = stack[-1] if stack else None
        if container == "mj-partial":
            container = parent
        stack.append(tag)
        if tag == "mj-partial":
            return
        in_attributes = "mj-attributes" in stack[:-1]
        if tag not in MJML_ATTRIBUTES:
            found.append((line, f"neznámá značka <{tag}> (MJML ji tiše propustí)"))
            return
        if tag == "mj-include":
            if "path" not in attrs:
                found.append((line, "mj-include bez atributu path"))
            else:
                includes.append((line, attrs["path"], container))
            return
        if in_attributes:
            allowed = _attributes_in_mj_attributes(tag)
        else:
            allowed = MJML_ATTRIBUTES[tag]
            expected = PARENTS.get(tag)
            if expected and container is not None and container not in expected:
                found.append(
                    (
                        line,
                        f"<{tag}> nemůže být uvnitř <{container}> "
                        f"(povoleno: {', '.join(sorted(expected))})",
                    )
                )
        if allowed is None:
            return
        for attr in attrs:
            if attr not in allowed:
                found.append((line, f"<{tag}> nezná atribut {attr!r}"))

    def end(tag: str) -> None:
        stack.pop()

    def pi(target: str, data: str) -> None:
        container = stack[-1] if stack else None
        if container == "mj-partial":
            container = parent
        if target == "j" and container in ("mj-section", "mj-group"):
            line = parser.CurrentLineNumber
            statement = _statement_at(text, line)
            if statement and _BLOCK_START_RE.match(statement):
                found.append(
                    (
                        line,
                        f"{statement} přímo v <{container}> (kolem mj-column) tiše rozbije "
                        "šířky sloupců; podmínku dejte do obsahu sloupce",
                    )
                )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.ProcessingInstructionHandler = pi
    try:
        parser.Parse(wrapped, True)
    except xml.parsers.expat.ExpatError as exc:
        if not gotcha:  # a reported gotcha already explains a parse failure
            found.append((exc.lineno, f"MJML není správně utvořené: {expat_message(exc, stack)}"))
    problems.extend(Problem(name, line, msg) for line, msg in found)

    for line, include, container in includes:
        target = _find_include(include, [path.parent, *include_dirs])
        if target is None:
            problems.append(Problem(name, line, f"mj-include: soubor {include!r} neexistuje"))
        elif target.resolve() not in seen:
            problems.extend(
                check_mjml(
                    target, is_body=False, include_dirs=include_dirs, seen=seen, parent=container
                )
            )
    return problems


def _statement_at(text: str, line: int) -> str:
    lines = text.splitlines()
    if 0 < line <= len(lines):
        match = re.search(r"\{%.*?%\}", lines[line - 1])
        if match:
            return match.group(0)
    return ""


def _attributes_in_mj_attributes(tag: str) -> frozenset[str] | None:
    if tag in ("mj-all", "mj-class"):
        return None  # any component attribute (mj-class also takes name)
    return MJML_ATTRIBUTES.get(tag)


def _find_include(include: str, bases: list[Path]) -> Path | None:
    for base in bases:
        candidate = (base / include).resolve()
        if candidate.is_file() and candidate.is_relative_to(base.resolve()):
            return candidate
    return None


# --- Jinja ---------------------------------------------------------------------------------


def _sample_values(blueprint: Blueprint, step: str) -> dict[str, Any]:
    from mailer.compose.freeze import campaign_values

    values = campaign_values(blueprint, step)
    values.update(
        salutation="Vážená paní ředitelko,",
        contact={
            "first_name": "Jana",
            "last_name": "Nováková",
            "email": "jana.novakova@knihovna.example",
            "role": "ředitelka",
            "legal_basis": "legitimate_interest",
        },
        library={
            "name": "Městská knihovna Příklad",
            "town": "Příklad",
            "region": "Kraj Vysočina",
            "type": "městská",
            "member": False,
        },
        links={
            "unsubscribe": "https://example.invalid/u/x",
            "preferences": "https://example.invalid/p/x",
            "web_version": "https://example.invalid/v/x",
            "apply": "https://example.invalid/chceme-byt-clenem/x",
            "register": "https://example.invalid/registrace/akce/x",
        },
        subject="Předmět",
        preheader="Úvod",
    )
    return values


def _render_line(exc: BaseException, filename: str) -> int | None:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == filename and frame.lineno:
            return frame.lineno
    return None


def check_jinja(path: Path, source: str, blueprint: Blueprint | None) -> list[Problem]:
    """Syntax, undeclared names, and a StrictUndefined render with sample values of each step
    (so `event.titel` or `contact.jmeno` fail here, with the line)."""
    from mailer.compose.freeze import TEMPLATE_VALUES, make_environment

    name = str(path)
    env = make_environment(autoescape=True)
    env.filters.update(checked_filters(env.filters))
    # A loader that names the file, so render tracebacks carry its lines.
    env.loader = jinja2.FunctionLoader(lambda _n: (source, name, lambda: True))
    try:
        ast = env.parse(source, name=name, filename=name)
    except jinja2.TemplateSyntaxError as exc:
        return [Problem(name, exc.lineno or 1, f"Jinja: {exc.message}")]
    problems = []
    allowed = set(TEMPLATE_VALUES)
    for var in sorted(jinja2.meta.find_undeclared_variables(ast) - allowed):
        match = re.search(rf"\b{re.escape(var)}\b", source)
        line = _line_of(source, match.start()) if match else 1
        problems.append(
            Problem(
                name, line, f"neznámá proměnná {var!r} (dostupné: {', '.join(sorted(allowed))})"
            )
        )
    if problems or blueprint is None:
        return problems
    template = env.get_template(name)
    lines = source.splitlines()
    # A step's own body is rendered with that step's values only (a registrants' body may
    # rely on `session`, which other steps do not have); a shared include with every step's.
    own = [s for s in blueprint.steps if blueprint.body_path(s).resolve() == path.resolve()]
    for step in own or blueprint.steps:
        values = _sample_values(blueprint, step.name)
        try:
            template.render(values)
        except Exception as exc:
            line = _render_line(exc, name) or 1
            text = lines[line - 1] if 0 < line <= len(lines) else ""
            problems.append(Problem(name, line, _render_problem(exc, step.name, text, values)))
            break
    return problems


def _render_problem(exc: Exception, step: str, line_text: str, values: dict[str, Any]) -> str:
    where = "hlavní rozeslání" if step == "launch" else f"krok „{step}“"
    if isinstance(exc, jinja2.UndefinedError):
        reason = explain_undefined(exc.message or "", line_text, values)
    elif isinstance(exc, FilterProblem):
        reason = str(exc)
    else:
        reason = f"šablonu nelze vykreslit ({type(exc).__name__})"
    return f"Jinja ({where}): {reason}"


def check_text(label: str, source: str, blueprint: Blueprint, step: str) -> list[Problem]:
    """Subject / preheader templates."""
    from mailer.compose.freeze import make_environment

    env = make_environment(autoescape=False)
    env.filters.update(checked_filters(env.filters))
    values = _sample_values(blueprint, step)
    try:
        env.from_string(source).render(values)
    except jinja2.TemplateSyntaxError as exc:
        return [Problem(label, exc.lineno or 1, f"Jinja: {exc.message}")]
    except Exception as exc:
        return [Problem(label, 1, _render_problem(exc, step, source, values))]
    return []


# --- the whole blueprint -------------------------------------------------------------------


def check_blueprint(slug: str, directory: Path | None = None) -> list[Problem]:
    """Every problem of one blueprint; empty when it can be sent. Without `directory`, the
    campaign as stored in the database (its files named `<slug>/<file>`), else the folder."""
    if directory is None:
        stored = stored_base(slug)
        if stored is not None and stored != campaigns_dir():
            return [
                Problem(_relative(p.file, stored), p.line, p.message)
                for p in _check_folder(slug, stored)
            ]
    return _check_folder(slug, directory or campaigns_dir())


def _relative(file: str, base: Path) -> str:
    path = Path(file)
    return str(path.relative_to(base)) if path.is_relative_to(base) else file


def _check_folder(slug: str, base: Path) -> list[Problem]:
    from mailer.settings import get_settings

    folder = base / slug
    toml_path = folder / "campaign.toml"
    if not toml_path.is_file():
        return [Problem(str(toml_path), 1, "soubor campaign.toml chybí")]
    blueprint, problems, _raw = check_toml(toml_path, slug)
    if blueprint is None:
        return sorted(problems)
    toml_text = toml_path.read_text(encoding="utf-8")
    lines = toml_key_lines(toml_text)
    problems.extend(check_segments(toml_path, blueprint, toml_text))

    include_dirs = [get_settings().templates_dir / "email"]
    bodies: dict[Path, int] = {}
    for index, step in enumerate(blueprint.steps):
        path = blueprint.body_path(step)
        if not path.is_file():
            key = ("reminder", blueprint.reminder_index(step), "body") if index else ("body",)
            problems.append(
                Problem(str(toml_path), lines.get(key, 1), f"soubor těla {path.name} neexistuje")
            )
            continue
        bodies.setdefault(path, index)
        for label, source in (
            ("subject", blueprint.subject_for(step)),
            ("preheader", blueprint.preheader_for(step)),
        ):
            key = (
                ("reminder", blueprint.reminder_index(step), label)
                if index and getattr(step, label)
                else (label,)
            )
            for p in check_text(str(toml_path), source, blueprint, step.name):
                problems.append(Problem(p.file, lines.get(key, 1), f"{label}: {p.message}"))

    mjml_ok = True
    seen: set[Path] = set()
    for path in bodies:
        found = check_mjml(path, is_body=True, include_dirs=include_dirs, seen=seen)
        mjml_ok = mjml_ok and not found
        problems.extend(found)
    for path in sorted(seen):
        problems.extend(check_jinja(path, path.read_text(encoding="utf-8"), blueprint))
    if mjml_ok:
        for path in bodies:
            problems.extend(check_accessibility(path, include_dirs))

    if not problems and mjml_ok:
        problems.extend(_trial_render(blueprint))
    return sorted(set(problems))


def _trial_render(blueprint: Blueprint) -> list[Problem]:
    """Freeze and fill every step as a sample recipient: what is checked is what is sent."""
    from mailer.compose.composer import Composer, Recipient
    from mailer.compose.freeze import freeze
    from mailer.tokens import Signer

    problems = []
    recipient = Recipient(
        outbox_id=1,
        email="jana.novakova@knihovna.example",
        first_name="Jana",
        last_name="Nováková",
        role="ředitelka",
        library_name="Městská knihovna Příklad",
        library_type="mestska",
        legal_basis="legitimate_interest",
    )
    for step in blueprint.steps:
        path = str(blueprint.body_path(step))
        try:
            content = freeze(blueprint, step.name)
            composer = Composer(content, 1, signer=Signer([b"check"]))
            composer.message(recipient)
            composer.web_html(None)
            compiled = composer.html(recipient)
        except Exception as exc:
            problems.append(
                Problem(
                    path,
                    1,
                    f"krok {step.name}: zprávu nelze sestavit ({exc}); "
                    "Jinja blok mezi řádky tabulky rozbije textovou verzi",
                )
            )
            continue
        source = blueprint.body_path(step).read_text(encoding="utf-8")
        for message in check_html(compiled):
            problems.append(Problem(path, _line_mentioning(source, message), message))
    return problems


def _line_mentioning(source: str, message: str) -> int:
    """The line of the body that holds the text quoted in „…“ in the message (else 1)."""
    quoted = re.search(r"„([^“]+)“", message)
    if quoted:
        for number, line in enumerate(source.splitlines(), start=1):
            if quoted.group(1) in line.lower():
                return number
    return 1


def check_accessibility(path: Path, include_dirs: list[Path]) -> list[Problem]:
    """lang="cs", alt text on images and contrast, at the line of the body or partial."""

    def load(include: str) -> tuple[str, str] | None:
        found = _find_include(include, [path.parent, *include_dirs])
        return (str(found), found.read_text(encoding="utf-8")) if found else None

    lines = expand(str(path), path.read_text(encoding="utf-8"), load)
    return [Problem(f.file, f.line, f.message) for f in check_structure(lines)]


def check_all(directory: Path | None = None) -> dict[str, list[Problem]]:
    """Problems per slug, for every blueprint."""
    return {slug: check_blueprint(slug, directory) for slug in blueprint_slugs(directory)}


__all__ = ["BlueprintError", "Problem", "check_all", "check_blueprint", "toml_key_lines"]
