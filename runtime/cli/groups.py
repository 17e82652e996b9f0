"""Option groups: a family of options declared once, as a frozen dataclass, taken whole.

A group is a frozen dataclass whose fields are the options: the field's name is the
parameter's, its type is ``Annotated[type, typer.Option(...)]`` and its default is the
option's. A command takes the group as one parameter whose default is :func:`group`::

    @expand
    def bench_command(model: Path = ..., device: DeviceOptions = group(DeviceOptions)) -> None:

:func:`expand` rewrites the signature typer reads (``__signature__``): the group's parameter
becomes one option per field, in field order, at its place. At call time the options' values
build the one ``DeviceOptions`` the command gets; its ``__post_init__`` checks them, so a bad
value is a one-line ``ConfigError`` before the command body runs.

``group(cls, skip=..., only=...)`` leaves fields out of a command (they keep their defaults);
``group(cls, help={...}, field=value)`` gives a field another help text or default there.

A group may also define ``notes(given) -> list[str]``: warnings about its values, ``given``
being the fields set on the command line (or through the environment), not left at their
defaults; each is printed as one ``cam-rt: warning:`` line before the command runs (e.g.
``--scales has no effect without --tta``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Set
from copy import copy
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import typer
from typer.models import OptionInfo

__all__ = ["choice", "expand", "group"]

Command = Callable[..., None]


def choice(*decls: str, **settings: Any) -> Any:
    """A ``typer.Option`` for a ``Literal`` field: ``--help`` lists the choices, and the text is
    handed on as given (``parser=str``) for the config dataclass to check, so a bad value is a
    one-line error and exit code 1 (typer's own choice check prints a usage box, exit code 2)."""
    return typer.Option(*decls, parser=str, **settings)


@dataclasses.dataclass(frozen=True, slots=True)
class _Group:
    """What :func:`group` returns: a command parameter standing for an option group."""

    cls: type[Any]
    fields: tuple[str, ...]  # the fields given as options, in order
    defaults: Mapping[str, Any]
    help: Mapping[str, str]

    def parameters(self) -> list[inspect.Parameter]:
        """The group's options, as keyword-only parameters typer reads."""
        hints = get_type_hints(self.cls, include_extras=True)
        defaults = {f.name: f.default for f in dataclasses.fields(self.cls)}
        out = []
        for name in self.fields:
            hint = hints[name]
            if get_origin(hint) is not Annotated:
                raise TypeError(f"{self.cls.__name__}.{name} is not Annotated with an Option")
            kind, *extras = get_args(hint)
            info = next(e for e in extras if isinstance(e, OptionInfo))
            if name in self.help:
                info = copy(info)
                info.help = self.help[name]
            out.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=self.defaults.get(name, defaults[name]),
                    annotation=Annotated[kind, info],
                )
            )
        return out

    def build(self, values: Mapping[str, Any], given: Set[str] = frozenset()) -> Any:
        """The group object of the options' values (fields left out keep their defaults); its
        notes about the ``given`` fields printed as warnings."""
        built = self.cls(**{**self.defaults, **values})
        notes: Callable[[Set[str]], list[str]] | None = getattr(built, "notes", None)
        for text in notes(given & set(self.fields)) if notes is not None else ():
            typer.echo(f"cam-rt: warning: {text}", err=True)
        return built


def group(
    cls: type[Any],
    *,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
    help: Mapping[str, str] | None = None,
    **defaults: Any,
) -> Any:
    """Stands, as a command parameter's default, for the option group ``cls`` (see the module's
    docstring); typed ``Any`` so ``device: DeviceOptions = group(DeviceOptions)`` type-checks."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    wanted = set(names) if only is None else set(only)
    unknown = (wanted | set(skip) | set(defaults) | set(help or {})) - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    chosen = tuple(n for n in names if n in wanted and n not in set(skip))
    return _Group(cls, chosen, dict(defaults), dict(help or {}))


def expand(command: Command) -> Command:
    """``command`` with its option-group parameters given to typer as one option per field."""
    signature = inspect.signature(command, eval_str=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, _Group] = {}
    for p in signature.parameters.values():
        if isinstance(p.default, _Group):
            groups[p.name] = p.default
            params += p.default.parameters()
        else:
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    names = [p.name for p in params]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TypeError(f"{command.__name__} declares {twice} twice")

    @functools.wraps(command)
    def run(**values: Any) -> None:
        given = _given(values.pop(_CONTEXT, None))
        picked = {name: {f: values.pop(f) for f in g.fields} for name, g in groups.items()}
        built = {name: g.build(picked[name], given) for name, g in groups.items()}
        command(**values, **built)

    if groups:  # typer passes its context: where each option's value came from
        params.append(
            inspect.Parameter(_CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        )
    run.__dict__["__signature__"] = signature.replace(parameters=params)
    run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return run


_CONTEXT = "cam_rt_context"  # the parameter typer fills with its Context


def _given(ctx: typer.Context | None) -> frozenset[str]:
    """The parameters set on the command line or through the environment (not defaults)."""
    if ctx is None:
        return frozenset()
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    return frozenset(
        name
        for name, source in sources.items()
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")
    )
