"""The command line's own words in Czech: what Typer and its Click core print themselves
("Usage:", "Options", "Show this message and exit.", "Error: Missing argument 'FILE'.").

Typer's bundled Click writes these in English and offers no catalogue to translate them. Its
panel titles are module settings, so they are set here; the rest belongs to the command
objects: `CzechTyper` builds every group and command of `sdruk` from Czech subclasses of
Typer's classes (through Typer's own `cls` parameter), which name the help option, the usage
line and every usage error in Czech. (Typer's Click core is its private `typer._click`; its
exception classes are imported from there because Typer re-exports only BadParameter.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer import rich_utils
from typer._click import exceptions as errors
from typer.core import TyperCommand, TyperGroup

HELP_TEXT = "Zobrazí tuto nápovědu a skončí."
USAGE = "Použití:"

_PANELS = {
    "ARGUMENTS_PANEL_TITLE": "Argumenty",
    "OPTIONS_PANEL_TITLE": "Volby",
    "COMMANDS_PANEL_TITLE": "Příkazy",
    "ERRORS_PANEL_TITLE": "Chyba",
    "ABORTED_TEXT": "Přerušeno.",
    "RICH_HELP": "Nápověda: [blue]{command_path} {help_option}[/]",
    "DEFAULT_STRING": "[výchozí: {}]",
    "ENVVAR_STRING": "[proměnná prostředí: {}]",
    "REQUIRED_LONG_STRING": "[povinné]",
    "DEPRECATED_STRING": "(zastaralé) ",
}

_USAGE_WORDS = {"[OPTIONS]": "[VOLBY]", "COMMAND [ARGS]...": "PŘÍKAZ [ARGUMENTY]..."}

# Typer's own value checks ("Value 'x' is not a valid integer.") and Click's usage errors.
_TYPES = {
    "integer": "celé číslo",
    "int": "celé číslo",
    "float": "číslo",
    "boolean": "ano/ne (true/false)",
    "bool": "ano/ne (true/false)",
    "datetime": "datum a čas",
    "uuid": "UUID",
}
_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), czech)
    for pattern, czech in (
        (r"Value '?(.*?)'? is not a valid (\w+)\.?", "„{0}“ není {type1}"),
        (r"'(.*?)' is not one of (.*)\.", "„{0}“ není jedna z možností: {1}"),
        (r"(?:File|Path|Directory) '?(.*?)'? does not exist\.?", "soubor „{0}“ neexistuje"),
        (r"Option '(.*?)' requires an argument\.", "volba {0} potřebuje hodnotu"),
        (r"Option '(.*?)' requires (\d+) arguments\.", "volba {0} potřebuje {1} hodnoty"),
        (r"Got unexpected extra argument(?:\(s\)|s)? \((.*)\)", "nadbytečné argumenty: {0}"),
        (r"Input should be a valid integer", "není celé číslo"),
        (r"Input should be a valid (?:number|float)", "není číslo"),
        (r"Input should be a valid boolean", "není ano/ne (true/false)"),
        (r"Input should be a valid (?:datetime|date)", "není platné datum"),
        (r"Input should be (.*)", "má být {0}"),
        (r"Missing command\.", "chybí příkaz"),
        (r"No such command '(.*?)'\.?", "neznámý příkaz „{0}“"),
        (r"No such option: (\S+)", "neznámá volba {0}"),
        (r"Option '(.*?)' does not take a value\.", "volba {0} nebere hodnotu"),
    )
)


def czech_message(message: str) -> str:
    """A Click or Typer message in Czech; an unknown English message is left as it is (and a
    message already in Czech, as the project's own checks write them, passes unchanged)."""
    for pattern, czech in _MESSAGES:
        match = pattern.search(message)
        if match:
            groups = match.groups()
            type1 = _TYPES.get(groups[1], groups[1]) if len(groups) > 1 else ""
            return czech.format(*groups, type1=type1)
    return message


def _param_name(error: errors.BadParameter) -> str:
    if error.param_hint is not None:
        hint = error.param_hint
        return " / ".join(hint) if isinstance(hint, list | tuple) else str(hint)
    if error.param is not None:
        return str(error.param.get_error_hint())
    return ""


def czech_error(error: errors.ClickException) -> errors.ClickException:
    """The same error with its message in Czech, as a UsageError Typer prints in its panel."""
    if getattr(error, "czech", False):
        return error
    ctx = getattr(error, "ctx", None)
    if isinstance(error, errors.MissingParameter):
        param = error.param
        kind = error.param_type or (param.param_type_name if param is not None else "")
        what = {"argument": "argument", "option": "volba", "parameter": "údaj"}.get(kind, kind)
        text = f"Chybí {what} {_param_name(error)}."
    elif isinstance(error, errors.NoSuchOption):
        text = f"Neznámá volba {error.option_name}."
        if error.possibilities:
            text += f" Myslíte {', '.join(sorted(error.possibilities))}?"
    elif isinstance(error, errors.BadParameter):
        text = f"Neplatná hodnota {_param_name(error)}: {czech_message(error.message)}."
    elif isinstance(error, errors.UsageError):
        text = czech_message(error.message)
        text = text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
    else:
        text = czech_message(error.format_message())
    translated = errors.UsageError(text, ctx)
    translated.exit_code = error.exit_code
    translated.czech = True  # type: ignore[attr-defined]
    return translated


@contextmanager
def _czech_errors() -> Iterator[None]:
    try:
        yield
    except errors.ClickException as error:
        translated = czech_error(error)
        if translated is error:
            raise
        raise translated from error


class _CzechMixin:
    """What a command prints by itself, in Czech."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.help = HELP_TEXT
        return option

    def get_usage(self, ctx: Any) -> str:
        usage: str = super().get_usage(ctx)  # type: ignore[misc]
        usage = re.sub(r"^(\s*)Usage:", rf"\1{USAGE}", usage)
        for english, czech in _USAGE_WORDS.items():
            usage = usage.replace(english, czech)
        return usage

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        with _czech_errors():
            result: list[str] = super().parse_args(ctx, args)  # type: ignore[misc]
            return result

    def invoke(self, ctx: Any) -> Any:
        with _czech_errors():
            return super().invoke(ctx)  # type: ignore[misc]


class CzechCommand(_CzechMixin, TyperCommand):
    pass


class CzechGroup(_CzechMixin, TyperGroup):
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        with _czech_errors():
            return super().resolve_command(ctx, args)


class CzechTyper(typer.Typer):
    """A Typer app whose groups and commands speak Czech (the classes above); every command
    group of `sdruk` is one."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", CzechGroup)
        # Shell completion's options explain themselves only in English.
        kwargs.setdefault("add_completion", False)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", CzechCommand)
        return super().command(*args, **kwargs)


def localise_panels() -> None:
    """Typer's help and error panel titles in Czech (they are module settings of rich_utils)."""
    for name, text in _PANELS.items():
        setattr(rich_utils, name, text)
