"""`ganprior weights list|download|verify`."""
from __future__ import annotations

import typer
from rich.table import Table

from .common import console, user_errors


weights_app = typer.Typer(help="Optional pretrained networks (VGG16, LPIPS, Inception) in the cache folder.",
                          no_args_is_help=True)


@weights_app.command("list")
@user_errors
def weights_list():
    """Show the optional weights, whether they are installed and what each one enables."""
    from rich.markup import escape

    from .. import weights
    # what each file enables goes below the table, so the table fits an 80-column terminal
    table = Table("name", "status", "file", box=None, header_style="bold", pad_edge=False)
    for w in weights.REGISTRY.values():
        status = weights.verify(w.name)
        colour = "green" if status == "ok" else "yellow" if status == "missing" else "red"
        table.add_row(w.name, f"[{colour}]{escape(status)}[/]", w.filename)
    console.print(table)
    console.print()
    for w in weights.REGISTRY.values():
        console.print(f"[bold]{w.name}[/]: {escape(w.purpose)}")
    console.print(f"\ncache folder: {weights.cache_dir()} (set GANPRIOR_WEIGHTS to change)")


@weights_app.command("download")
@user_errors
def weights_download(names: list[str] = typer.Argument(None, help="Names (default: all).")):
    """Download weights into the cache folder (needs a network connection)."""
    from .. import weights
    for name in names or list(weights.REGISTRY):
        if name not in weights.REGISTRY:
            raise ValueError(f"unknown weights {name!r}; see `ganprior weights list`")
        console.print(f"{name}: {weights.download(name)}")


@weights_app.command("verify")
@user_errors
def weights_verify():
    """Check the installed weight files against their known SHA-256; exit 1 when one does not
    match or has no known hash to be checked against (it cannot be trusted as ok)."""
    from .. import weights
    bad = False
    for name in weights.REGISTRY:
        status = weights.verify(name)
        console.print(f"{name}: {status}")
        bad |= status not in ("ok", "missing")
    if bad:
        raise typer.Exit(1)
