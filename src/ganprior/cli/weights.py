"""`ganprior weights list|download|verify`."""
from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from .common import console, user_errors


weights_app = typer.Typer(help="Optional pretrained networks (VGG16, LPIPS, Inception): where "
                               "they were found, what they enable, download, verify.",
                          no_args_is_help=True)

# `weights.verify` words, shortened for the table; the details are printed below it
_SHORT = {"ok": ("verified", "green"), "missing": ("missing", "yellow")}


def _short(status: str) -> tuple[str, str]:
    from .. import weights
    if status in _SHORT:
        return _SHORT[status]
    if status == weights.UNVERIFIED:
        return "unverified", "yellow"
    return ("hash mismatch" if status.startswith("hash mismatch") else "unreadable"), "red"


@weights_app.command("list")
@user_errors
def weights_list():
    """Show each optional file: whether it was found (and where), whether its SHA-256 checks
    out, what it enables, and the places looked in."""
    from .. import weights
    # every line fits 80 columns: the table holds short words, the long texts follow it
    table = Table("name", "status", "found in", box=None, header_style="bold", pad_edge=False)
    found, problems = {}, {}
    for w in weights.REGISTRY.values():
        status, where = weights.verify(w.name), weights.locate(w.name)
        word, colour = _short(status)
        table.add_row(w.name, f"[{colour}]{word}[/]", where[0] if where else "-")
        if where:
            found[w.name] = where[1]
        if status not in ("ok", "missing", weights.UNVERIFIED):
            problems[w.name] = status
    console.print(table)
    console.print("\n[bold]what each enables[/]")
    for w in weights.REGISTRY.values():
        console.print(f"  {w.name}: {escape(w.enables)}")
    if found:
        console.print("\n[bold]files[/]")
        for name, path in found.items():
            console.print(f"  {name}: {escape(str(path))}")
            if name in problems:
                console.print(f"    [red]{escape(problems[name])}[/]")
    console.print("\n[bold]looked in, in this order[/]")
    for i, (place, folder) in enumerate(_places(), 1):
        console.print(f"  {i}. {escape(place)}")
        if folder is not None:
            console.print(f"     {escape(str(folder))}")
    console.print("`ganprior weights download NAME` fetches a missing file (docs/weights.md).")


def _places() -> list[tuple[str, object]]:
    """(what, folder or None) per place searched, in the order `weights.places` uses."""
    from .. import weights
    found = [(f"{weights.WEIGHTS_FOLDER} ($GANPRIOR_WEIGHTS)", weights.cache_dir())]
    if weights.only_own_folder():
        return found + [("nowhere else: GANPRIOR_WEIGHTS_ONLY is set", None)]
    in_cache = ", ".join(n for n, w in weights.REGISTRY.items() if weights.TORCH_CACHE in w.also_in)
    found.append((f"{weights.TORCH_CACHE} ($TORCH_HOME/hub/checkpoints), for {in_cache}",
                  weights.torch_cache_dir()))
    package = weights.lpips_package_dir()
    found.append((f"{weights.LPIPS_PACKAGE}, for lpips-vgg", package) if package else
                 (f"{weights.LPIPS_PACKAGE}, for lpips-vgg: not installed "
                  "(`pip install lpips` ships it)", None))
    return found


@weights_app.command("download")
@user_errors
def weights_download(names: list[str] = typer.Argument(None, help="Names (default: all)."),
                     timeout: float = typer.Option(30.0, min=0.1, help="Seconds without an "
                                                   "answer from the server before giving up.")):
    """Download missing weights into the weights folder (needs a network connection). Streamed
    and checked against the known SHA-256; a failed download leaves no file. Files already
    found and verified, wherever they are, are not downloaded again."""
    from .. import weights
    names = names or list(weights.REGISTRY)
    for name in names:  # every name checked before anything is fetched
        if name not in weights.REGISTRY:
            raise ValueError(f"unknown weights {name!r}; see `ganprior weights list`")
    for name in names:
        if weights.verify(name) == "ok":
            console.print(f"{name}: already there, verified: {escape(str(weights.find(name)))}")
            continue
        path = weights.download(name, timeout=timeout, force=True)
        check = "verified" if weights.REGISTRY[name].sha256_prefix else weights.UNVERIFIED
        console.print(f"{name}: downloaded, {check}: {escape(str(path))}")


@weights_app.command("verify")
@user_errors
def weights_verify():
    """Check the weight files found against their known SHA-256; exit 1 when one does not
    match or has no known hash to be checked against (it cannot be trusted as ok)."""
    from .. import weights
    bad = False
    for name in weights.REGISTRY:
        status, where = weights.verify(name), weights.locate(name)
        console.print(f"{name}: {escape(status)}" + (f", in {where[0]}" if where else ""))
        bad |= status not in ("ok", "missing")
    if bad:
        raise typer.Exit(1)
