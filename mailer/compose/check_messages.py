"""Czech explanations for what `sdruk campaigns check` finds: Jinja's undefined names (which
name, and what names exist there instead), filters given a missing or wrong value, and the
XML parser's English errors in MJML ("mismatched tag")."""

from __future__ import annotations

import functools
import re
import xml.parsers.expat
from collections.abc import Callable, Mapping
from typing import Any

import jinja2

# The XML parser's messages (xml.parsers.expat.errors) in the words staff read.
_EXPAT = {
    "mismatched tag": "uzavírací značka nepatří k poslední otevřené značce{open}",
    "not well-formed (invalid token)": (
        "nepovolený znak nebo neuzavřená značka (např. samotné „<“ nebo „&“)"
    ),
    "unclosed token": "neuzavřená značka",
    "no element found": "soubor končí dřív, než se zavřely všechny značky{open}",
    "junk after document element": "za uzavírací </mjml> následuje další obsah",
    "undefined entity": (
        "neznámá entita (znak „&“ pište jako &amp;, nezlomitelnou mezeru jako &#160;)"
    ),
    "duplicate attribute": "atribut je u značky dvakrát",
    "unbound prefix": "značka s dvojtečkou v názvu (neznámý jmenný prostor)",
    "syntax error": "syntaktická chyba",
    "unclosed CDATA section": "neuzavřený blok CDATA",
    "XML or text declaration not at start of entity": "deklarace <?xml …?> není na začátku souboru",
    "reference to invalid character number": "odkaz na neplatný znak (&#…;)",
    "not well-formed": "chybně utvořené XML",
}


def expat_message(exc: xml.parsers.expat.ExpatError, open_tags: list[str] | None = None) -> str:
    """The parser's error in Czech; `open_tags` (innermost last) names what is still open."""
    english = str(xml.parsers.expat.errors.messages.get(exc.code, str(exc)))
    open_tag = [t for t in (open_tags or []) if t != "mj-partial"]
    where = f" (otevřená je <{open_tag[-1]}>)" if open_tag else ""
    for key, czech in _EXPAT.items():
        if english.startswith(key):
            return czech.format(open=where)
    return f"chybně utvořené XML (kód chyby {exc.code})"


def _available(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return sorted(str(k) for k in value)
    if value is None:
        return []
    return sorted(n for n in dir(value) if not n.startswith("_"))


def _resolve(values: Mapping[str, Any], path: list[str]) -> tuple[bool, Any]:
    current: Any = values
    for part in path:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif not isinstance(current, Mapping) and hasattr(current, part):
            current = getattr(current, part)
        else:
            return False, None
    return True, current


def explain_undefined(message: str, line_text: str, values: Mapping[str, Any]) -> str:
    """Jinja's UndefinedError message ("'dict object' has no attribute 'zacatek'") as Czech:
    which name is not there, where it was looked up, and what names exist there."""
    missing_top = re.match(r"'([^']+)' is undefined", message)
    if missing_top:
        name = missing_top.group(1)
        return (
            f"proměnná „{name}“ neexistuje; dostupné jsou: "
            f"{', '.join(sorted(k for k in values if not k.startswith('_')))}"
        )
    attribute = re.search(r"has no attribute '([^']+)'", message) or re.search(
        r"no element '([^']+)'", message
    )
    if attribute:
        name = attribute.group(1)
        found = re.search(rf"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.{re.escape(name)}\b", line_text)
        if found is None:
            found = re.search(
                rf"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\[['\"]{re.escape(name)}['\"]\]", line_text
            )
        if found:
            parent = found.group(1)
            ok, value = _resolve(values, parent.split("."))
            if ok and value is None:
                return (
                    f"„{parent}“ u tohoto kroku nemá hodnotu, takže nemá ani „{name}“ "
                    f"(např. kampaň bez [event] v campaign.toml)"
                )
            if ok:
                names = _available(value)
                known = f"; „{parent}“ má: {', '.join(names)}" if names else ""
                return f"„{parent}“ nemá položku „{name}“{known}"
        return f"položka „{name}“ neexistuje"
    if "NoneType" in message:
        return "hodnota není vyplněná (None) a nelze z ní číst další položky"
    return f"nedefinovaná hodnota ({message})"


class FilterProblem(Exception):
    """A template filter got a value it cannot work with; the message is Czech."""


def checked_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The filters for a check render: an undefined argument raises Jinja's UndefinedError
    (naming the missing value) before the filter runs, and a filter's own failure on a wrong
    value becomes a FilterProblem that names the filter."""

    def wrap(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            for arg in (*args, *kwargs.values()):
                if isinstance(arg, jinja2.Undefined):
                    arg._fail_with_undefined_error()
            try:
                return func(*args, **kwargs)
            except jinja2.UndefinedError:
                raise
            except Exception as exc:
                value = args[0] if args else None
                raise FilterProblem(
                    f"filtr „{name}“ nelze použít na hodnotu {value!r}: "
                    "hodnota má jiný typ, než filtr čeká (např. text místo data)"
                ) from exc

        return checked

    return {name: wrap(name, func) for name, func in filters.items()}
