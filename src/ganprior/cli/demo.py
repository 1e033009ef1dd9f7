"""`ganprior demo`."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import DeviceOpt, console, user_errors


@user_errors
def demo(out: Path = typer.Option(Path("out/demo"), help="Report folder."),
         device: str = DeviceOpt,
         quick: bool = typer.Option(False, "--quick", help="Tiny optimisation budgets: a smoke "
                                    "test of every section, not results worth looking at.")):
    """Run the end-to-end showcase on the embedded models and write OUT/index.html."""
    from ..demo import run_demo
    from ..device import pick_device
    index = run_demo(out, pick_device(device), quick)
    console.print(f"report: {index}")
