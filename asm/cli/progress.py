"""The terminal display of ``asm.progress`` events: one rich bar per open stage, messages above them."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from asm.progress import Message, ProgressEvent, Reporter, StageFinished, StageProgress, StageStarted

STYLES = {"info": "{text}", "warning": "[yellow]note:[/yellow] {text}", "error": "[bold red]{text}[/bold red]"}


def format_figures(info: dict) -> str:
    """``{"best": 0.93, "improved": True}`` -> ``"best 0.93 improved"`` (floats to 4 significant digits)."""
    parts = []
    for key, value in info.items():
        label = key.replace("_", " ")
        if isinstance(value, bool):
            if value:
                parts.append(label)
        elif isinstance(value, float):
            parts.append(f"{label} {value:.4g}")
        else:
            parts.append(f"{label} {value}")
    return "  ".join(parts)


class _Rate(ProgressColumn):
    def __init__(self, unit: str | None):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        if not self.unit or not task.speed:
            return Text("")
        return Text(f"{task.speed:,.0f} {self.unit}/s", style="cyan")


class RichReporter(Reporter):
    """Shows stages as rich progress bars on ``console``; use as a context manager.

    ``keep``: finished stages stay on screen (training's epochs), else they disappear;
    ``transient``: the bars vanish when the display closes; ``rate_unit``: show a rate (examples/s);
    ``quiet``: no bars, messages only (``--json`` runs print messages on stderr).
    """

    def __init__(self, console: Console, *, transient: bool = True, keep: bool = False, rate_unit: str | None = None,
                 quiet: bool = False):
        super().__init__()
        self.console = console
        self.keep = keep
        self.quiet = quiet
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            _Rate(rate_unit), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=console, transient=transient, disable=quiet,
                            refresh_per_second=4)
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> RichReporter:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def emit(self, event: ProgressEvent) -> None:
        if isinstance(event, Message):
            self.bar.console.print(STYLES.get(event.level, "{text}").format(text=event.text), highlight=False)
        elif isinstance(event, StageStarted):
            self._drop(event.stage)
            self._tasks[event.stage] = self.bar.add_task(event.stage, total=event.total, completed=event.done, info="")
        elif isinstance(event, StageProgress):
            task = self._tasks.get(event.stage)
            if task is None:
                task = self._tasks[event.stage] = self.bar.add_task(event.stage, total=event.total, info="")
            fields = {"info": format_figures(event.info)} if event.info else {}
            self.bar.update(task, completed=event.done, total=event.total, **fields)
        elif isinstance(event, StageFinished) and not self.keep:
            self._drop(event.stage)

    def _drop(self, stage: str) -> None:
        task = self._tasks.pop(stage, None)
        if task is not None:
            self.bar.remove_task(task)
