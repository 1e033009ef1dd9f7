"""`ganprior models` and `ganprior info`."""
from __future__ import annotations

import json

import typer
from rich.table import Table

from .common import _load, console, user_errors


@user_errors
def models():
    """List the embedded default models: resolution, latent spaces, source, availability."""
    from ..checkpoints import zoo_entries
    from rich.table import Column
    table = Table(Column("name", no_wrap=True), "arch", "res", "latent spaces", "status", "source")
    for e in zoo_entries().values():
        status = e.availability()
        table.add_row(e.name, e.arch, str(e.resolution), ", ".join(e.latent_spaces),
                      "[green]ok[/]" if status == "ok" else f"[red]{status}[/]", e.source)
    console.print(table)
    console.print("Any --model also accepts a path: NVIDIA .pkl, rosinality .pt, "
                  "ganprior .safetensors (+ .json).")


@user_errors
def info(model: str = typer.Argument(..., help="Zoo name or checkpoint path.")):
    """Describe a model: architecture, latent sizes, split layers, parameters, provenance."""
    nets = _load(model, "cpu")
    out = nets["G"].describe()
    out["has_discriminator"] = "D" in nets
    out["meta"] = nets["meta"]
    console.print_json(json.dumps(out, default=str, allow_nan=False))
