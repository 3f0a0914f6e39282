"""Registry commands: ``inspect-registry``, ``lock``, ``unlock``."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.table import Table
from sqlalchemy import func, select

from asm.cli.app import app, console
from asm.errors import AsmError
from asm.registry.db import session_scope
from asm.registry.models import Preset, Synth
from asm.registry.synths import find_preset, get_synth, parameter_spec, set_locks, space_of
from asm.synth.builtin import BUILTINS


def registry_summary(synth: Optional[str] = None) -> list[dict]:
    """Synths with their parameters (locks included) and preset counts, as plain data."""
    with session_scope(read_only=True) as session:
        if synth:
            rows = [get_synth(session, synth)]
        else:
            for name in BUILTINS if not session.info["read_only"] else ():
                get_synth(session, name)
            rows = list(session.scalars(select(Synth).order_by(Synth.name)))
        counts = dict(session.execute(select(Preset.synth_id, func.count()).group_by(Preset.synth_id)).all())
        out = []
        for row in rows:
            params = []
            for p in row.parameters:
                spec = parameter_spec(p)
                params.append(
                    {
                        "index": p.index,
                        "name": p.name,
                        "kind": p.kind,
                        "steps": spec.n_values or None,
                        "choices": p.choices,
                        "default": p.default,
                        "locked": p.locked,
                        "locked_value": p.locked_value,
                        "locked_display": spec.display(p.locked_value) if p.locked else None,
                        "free_position": p.free_position,
                    }
                )
            out.append(
                {
                    "name": row.name,
                    "kind": row.kind,
                    "path": row.path,
                    "version": row.version,
                    "plugin_id": row.plugin_id,
                    "settings": row.settings,
                    "parameter_count": len(params),
                    "free_count": sum(not p["locked"] for p in params),
                    "preset_count": counts.get(row.id, 0),
                    "free_signature": space_of(row).free_signature(),
                    "lock_signature": space_of(row).lock_signature(),
                    "parameters": params,
                }
            )
    return out


@app.command("inspect-registry")
def inspect_registry(
    synth: Optional[str] = typer.Option(None, "--synth", "-s", help="Only this synth, with its parameters."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show registered synths, their parameters (locks marked) and preset counts."""
    data = registry_summary(synth)
    if as_json:
        typer.echo(json.dumps(data if synth is None else data[0], indent=2, default=str))
        return
    table = Table(title="Synths")
    for col in ("name", "kind", "path", "params", "free", "presets"):
        table.add_column(col)
    for s in data:
        table.add_row(s["name"], s["kind"], s["path"], str(s["parameter_count"]), str(s["free_count"]),
                      str(s["preset_count"]))
    console.print(table)
    for s in data if synth else []:
        t = Table(title=f"Parameters of {s['name']}")
        for col in ("index", "name", "kind", "values", "default", "lock"):
            t.add_column(col)
        for p in s["parameters"]:
            values = ", ".join(p["choices"]) if p["choices"] else (str(p["steps"]) if p["steps"] else "[0, 1]")
            lock = f"[bold yellow]locked = {p['locked_display']}[/] ({p['locked_value']:.4g})" if p["locked"] else ""
            t.add_row(str(p["index"]), p["name"], p["kind"], values, f"{p['default']:.3g}", lock)
        console.print(t)


@app.command()
def lock(
    synth: str = typer.Argument(..., help="Synth name."),
    assignments: list[str] = typer.Argument(
        None, help="name=value or index=value (normalised value, choice name or 'default'); "
                   "with --from-preset just names or indices."),
    from_preset: Optional[str] = typer.Option(None, "--from-preset", help="Lock to this preset's values."),
) -> None:
    """Lock parameters to fixed values: they are sent to the synth before every render."""
    if not assignments:
        raise AsmError("name at least one parameter to lock (name=value)")
    with session_scope() as session:
        row = get_synth(session, synth)
        space = space_of(row)
        preset = find_preset(session, row, from_preset).values if from_preset else None
        if preset is None:
            locks = space.parse_assignments(assignments, "lock", hint=" (or use --from-preset)")
        else:
            locks = {}
            for item in assignments:
                pos = space.position(item.split("=", 1)[0].strip())
                if "=" in item:
                    raise AsmError(f"with --from-preset give parameter names only, not {item!r}")
                locks[space.params[pos].index] = float(preset[pos])
        set_locks(session, row, locks)
        space = space_of(row)
        for index in locks:
            spec = space.spec(index)
            console.print(f"locked [bold]{spec.name}[/bold] = {spec.display(spec.locked_value)} ({spec.locked_value:.4g})")
        console.print(f"{space.n_free} of {space.size} parameters of {synth} are free")


@app.command()
def unlock(
    synth: str = typer.Argument(..., help="Synth name."),
    names: list[str] = typer.Argument(None, help="Parameters to unlock (names or plugin indices)."),
    all_: bool = typer.Option(False, "--all", help="Unlock every parameter."),
) -> None:
    """Unlock parameters so estimators and searches may vary them again."""
    if not names and not all_:
        raise AsmError("name parameters to unlock, or pass --all")
    with session_scope() as session:
        row = get_synth(session, synth)
        space = space_of(row)
        targets = [p.index for p in space.params] if all_ else [space.spec(n).index for n in names]
        set_locks(session, row, {i: None for i in targets})
        console.print(f"unlocked {len(targets)} parameter(s); {space_of(row).n_free} of {space.size} free")
