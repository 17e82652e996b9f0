"""Option groups (cli/groups.py) on a small typer app: one dataclass, its fields as options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import pytest
import typer
from typer.testing import CliRunner

from cam_rt.runtime.cli.groups import choice, expand, group
from cam_rt.runtime.errors import ConfigError

Colour = Literal["red", "green"]


@dataclass(frozen=True, slots=True)
class Paint:
    colour: Annotated[Colour, choice("--colour", help="red or green.")] = "red"
    coats: Annotated[int, typer.Option("--coats", help="Layers.")] = 1
    glossy: Annotated[bool, typer.Option("--glossy/--matte", help="Finish.")] = False

    def __post_init__(self) -> None:
        if self.colour not in ("red", "green"):
            raise ConfigError(f"--colour '{self.colour}' is unknown: use red or green")


def _app(seen: list[tuple[str, Paint, Paint]]) -> typer.Typer:
    @expand
    def paint(
        name: Annotated[str, typer.Argument(help="What to paint.")],
        wall: Paint = group(Paint, skip=["glossy"]),
        door: Paint = group(Paint, only=["glossy"], help={"glossy": "Door finish."}, coats=2),
        dry: Annotated[bool, typer.Option("--dry", help="Only say it.")] = False,
    ) -> None:
        """Paint a wall and a door."""
        seen.append((name + ("?" if dry else ""), wall, door))

    app = typer.Typer()
    app.command("paint")(paint)
    app.command("other")(lambda: None)
    return app


def test_the_command_gets_one_object_per_group() -> None:
    seen: list[tuple[str, Paint, Paint]] = []
    args = ["paint", "hall", "--colour", "green", "--coats", "3", "--glossy", "--dry"]
    result = CliRunner().invoke(_app(seen), args)
    assert result.exit_code == 0, result.output
    assert seen == [("hall?", Paint("green", 3, False), Paint("red", 2, True))]
    assert CliRunner().invoke(_app(seen), ["paint", "shed"]).exit_code == 0
    assert seen[1] == ("shed", Paint(), Paint(coats=2))  # skipped fields keep the defaults


def test_help_lists_the_fields_with_their_help_and_choices() -> None:
    result = CliRunner().invoke(_app([]), ["paint", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for text in ("--colour", "<red|green>", "--coats", "Layers.", "--dry", "Door finish."):
        assert text in result.output
    assert "Paint a wall and a door." in result.output
    assert result.output.count("--glossy") == 1 and "Finish." not in result.output


def test_a_bad_choice_reaches_the_dataclass() -> None:
    """choice(): typer does not check the value (that would be exit code 2); __post_init__
    does, as a ConfigError (which the cam-rt group prints as one line, exit code 1)."""
    result = CliRunner().invoke(_app([]), ["paint", "hall", "--colour", "blue"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "--colour 'blue' is unknown: use red or green"


def test_wrong_declarations_are_refused() -> None:
    with pytest.raises(TypeError, match=r"Paint has no fields \['size'\]"):
        group(Paint, skip=["size"])
    with pytest.raises(TypeError, match=r"Paint has no fields \['shine'\]"):
        group(Paint, shine=True)

    def twice(wall: Paint = group(Paint), door: Paint = group(Paint)) -> None: ...

    with pytest.raises(TypeError, match=r"twice declares \['coats', 'colour', 'glossy'\] twice"):
        expand(twice)


@dataclass(frozen=True, slots=True)
class Varnish:
    layers: Annotated[int, typer.Option("--layers", help="Layers.")] = 1
    shiny: Annotated[bool, typer.Option("--shiny/--dull", help="Finish.")] = False

    def notes(self, given: set[str]) -> list[str]:
        return [f"given: {sorted(given)}"] if not self.shiny else []


def test_notes_see_the_fields_given_on_the_command_line() -> None:
    """A group's notes() get the fields set on the command line (a default typed out counts),
    and each note is one warning line; without notes() or with nothing to say, nothing."""

    @expand
    def varnish(
        coat: Varnish = group(Varnish),
        wall: Paint = group(Paint, skip=["glossy"]),
    ) -> None:
        typer.echo("done")

    app = typer.Typer()
    app.command("varnish")(varnish)
    app.command("other")(lambda: None)
    cases = {
        (): "given: []",
        ("--layers", "1", "--coats", "2"): "given: ['layers']",  # its own fields only
        ("--dull",): "given: ['shiny']",
    }
    for args, note in cases.items():
        result = CliRunner().invoke(app, ["varnish", *args])
        assert result.exit_code == 0, result.output
        assert result.stderr == f"cam-rt: warning: {note}\n" and result.stdout == "done\n"
    assert CliRunner().invoke(app, ["varnish", "--shiny"]).stderr == ""
