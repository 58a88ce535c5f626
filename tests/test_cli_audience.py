"""The audience commands as staff run them: contacts import, segments, demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app

runner = CliRunner()

LIBS = {
    "lhota": "Obecní knihovna Lhota;obecni;Lhota;Zlínský kraj;ne",
    "brno": "Městská knihovna Brno;mestska;Brno;Jihomoravský kraj;ano",
}
CSV = "\n".join(
    [
        "e-mail;jméno;příjmení;funkce;knihovna;typ;obec;kraj;člen;souhlas;stav",
        f"eva@lhota.example;Eva;Nová;ředitelka;{LIBS['lhota']};consent;active",
        f"spatna-adresa;Jan;Starý;knihovník;{LIBS['lhota']};consent;active",
        f"petr@brno.example;Petr;Malý;ředitel;{LIBS['brno']};consent;active",
        f"jana@brno.example;Jana;Malá;knihovnice;{LIBS['brno']};consent;unsubscribed",
    ]
)


@pytest.fixture
def imported(configured: str, tmp_path: Path) -> Path:
    path = tmp_path / "kontakty.csv"
    path.write_text(CSV + "\n", encoding="cp1250")
    result = runner.invoke(app, ["contacts", "import", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return path


def test_it_prints_the_import_result_as_json(configured: str, tmp_path: Path) -> None:
    path = tmp_path / "kontakty.csv"
    path.write_text(CSV + "\n", encoding="cp1250")
    result = runner.invoke(app, ["contacts", "import", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["created"], data["updated"], data["unchanged"]) == (3, 0, 0)
    assert data["rejected"] == [
        {"line": 3, "column": "e-mail", "reason": data["rejected"][0]["reason"]}
    ]
    assert "spatna-adresa" in data["rejected"][0]["reason"]
    again = json.loads(runner.invoke(app, ["contacts", "import", str(path), "--json"]).output)
    assert (again["created"], again["unchanged"]) == (0, 3)


def test_it_summarises_an_import_in_czech_and_dry_run_saves_nothing(
    configured: str, tmp_path: Path
) -> None:
    path = tmp_path / "kontakty.csv"
    path.write_text(CSV + "\n", encoding="utf-8-sig")
    result = runner.invoke(app, ["contacts", "import", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "nanečisto" in result.output and "nové kontakty: 3" in result.output
    assert "Odmítnuté řádky" in result.output
    count = runner.invoke(app, ["segments", "count", "--json"])
    assert json.loads(count.output) == {"count": 0}


def test_it_exits_2_when_the_file_cannot_be_read(configured: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["contacts", "import", str(tmp_path / "chybi.csv")])
    assert result.exit_code == 2
    (tmp_path / "bez.csv").write_text("jméno\nEva\n", encoding="utf-8")
    result = runner.invoke(app, ["contacts", "import", str(tmp_path / "bez.csv"), "--json"])
    assert result.exit_code == 2
    assert "e-mail" in json.loads(result.output)["error"]


def test_it_counts_and_shows_segments(imported: Path) -> None:
    result = runner.invoke(app, ["segments", "count", "--where", "library_type=mestska", "--json"])
    assert json.loads(result.output) == {"count": 1}  # jana is unsubscribed
    result = runner.invoke(app, ["segments", "count", "-w", "member!=ano", "-w", "region=Zlínský"])
    assert result.exit_code == 0 and "1" in result.output
    shown = runner.invoke(app, ["segments", "show", "--limit", "1"])
    assert shown.exit_code == 0, shown.output
    assert "E-mail" in shown.output and "eva@lhota.example" in shown.output
    assert "petr@brno.example" not in shown.output
    data = json.loads(runner.invoke(app, ["segments", "show", "--json"]).output)
    assert data["count"] == 2
    assert [c["email"] for c in data["contacts"]] == ["eva@lhota.example", "petr@brno.example"]
    assert data["contacts"][0]["library"] == "Obecní knihovna Lhota"


def test_it_reads_a_segment_file_and_saved_segments(imported: Path, tmp_path: Path) -> None:
    toml = tmp_path / "campaign.toml"
    toml.write_text('[segment]\nlibrary_type = ["mestska", "obecni"]\nmember = false\n')
    result = runner.invoke(app, ["segments", "count", "--segment-file", str(toml), "--json"])
    assert json.loads(result.output) == {"count": 1}
    saved = runner.invoke(app, ["segments", "save", "clenove", "--where", "member=ano"])
    assert saved.exit_code == 0, saved.output
    result = runner.invoke(app, ["segments", "count", "--saved", "clenove", "--json"])
    assert json.loads(result.output) == {"count": 1}
    missing = runner.invoke(app, ["segments", "count", "--saved", "nic"])
    assert missing.exit_code == 2


def test_it_explains_a_wrong_field_or_value(imported: Path) -> None:
    result = runner.invoke(app, ["segments", "count", "--where", "kraj=Praha"])
    assert result.exit_code == 2
    assert "„kraj“" in result.output and "region" in result.output
    result = runner.invoke(app, ["segments", "show", "--where", "library_type=hradni"])
    assert result.exit_code == 2
    assert "„hradni“" in result.output and "univerzitni" in result.output


def test_it_loads_the_demo_data_idempotently(configured: str) -> None:
    first = runner.invoke(app, ["demo"])
    assert first.exit_code == 0, first.output
    assert "nové kontakty 892" in first.output
    assert "Knihovny podle typu" in first.output and "městská" in first.output
    assert "Kontakty podle stavu" in first.output and "odhlášené" in first.output
    second = runner.invoke(app, ["demo"])
    assert "nové kontakty 0" in second.output and "beze změny 892" in second.output


def test_it_runs_as_the_installed_command(configured: str, tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    path.write_text(CSV + "\n", encoding="utf-8")
    sdruk = Path(sys.executable).parent / "sdruk"
    done = subprocess.run(
        [str(sdruk), "contacts", "import", str(path), "--json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"] == 3
