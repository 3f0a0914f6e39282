"""``asm serve``: the local web page (match a sound, listen, download the preset, browse history)."""

from __future__ import annotations

import socket

import typer

from asm.cli.app import app, console, err_console
from asm.errors import AsmError
from asm.render import resolve_workers

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; localhost by default (other hosts "
                             "expose the registry to the network)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port."),
    workers: str = typer.Option("auto", "--workers", "-j", help="Render processes per match (auto = cores)."),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", min=0.01, help="Largest upload accepted."),
    queue: int = typer.Option(8, "--queue", min=1, help="Jobs that may wait for the one running; more get 'busy'."),
) -> None:
    """Start a local web app: upload a target, watch the search live, A/B the match against the target,
    download the preset (native format and JSON), browse past matches and benchmarks. API docs at /docs."""
    import uvicorn

    from asm.serve.app import create_app, open_registry

    if host not in LOCAL_HOSTS:
        err_console.print(f"[yellow]warning:[/yellow] binding {host}: anyone who can reach it can run matches "
                          "and read the registry", highlight=False)
    open_registry()  # a registry problem is one red line here, not a traceback from the server
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise AsmError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    web = create_app(workers=resolve_workers(workers), max_upload_mb=max_upload_mb, max_waiting=queue)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"asm serve on [bold]http://{shown}:{port}/[/bold] (API docs at /docs); Ctrl-C stops it",
                  highlight=False)
    uvicorn.run(web, host=host, port=port, log_level="warning")
