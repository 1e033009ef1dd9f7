"""`ganprior serve`: the studio in the browser (Drag and Paint tabs)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import DeviceOpt, console, user_errors

LOOPBACK = ("127.0.0.1", "localhost")


@user_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this machine "
                             "only; 0.0.0.0 exposes the studio to the network)."),
    port: int = typer.Option(7860, help="Port to listen on."),
    models: Optional[Path] = typer.Option(None, "--models", show_default="none: zoo models only",
                                          help="Folder of checkpoint files "
                                          "the studio may open (nothing outside it is read); "
                                          "pix2pixHD models appear in the Paint tab."),
    device: str = DeviceOpt,
    session_ttl: float = typer.Option(1800, help="Seconds a session may stay idle before it "
                                      "is dropped."),
    max_sessions: int = typer.Option(16, help="Sessions (browser tabs) open at once."),
    max_upload_mb: float = typer.Option(8, help="Largest photo upload, in MiB."),
    max_upload_mp: float = typer.Option(16, help="Largest photo upload, in megapixels."),
):
    """Run the studio (drag points on GAN images; paint label maps for pix2pixHD): open
    http://HOST:PORT in a browser (docs/studio.md)."""
    from . import validate
    validate.integer(port, "--port", 1, 65535)
    validate.finite(session_ttl, "--session-ttl", lo=1)
    validate.integer(max_sessions, "--max-sessions", 1, 1024)
    validate.finite(max_upload_mb, "--max-upload-mb", lo=0, hi=1024, lo_open=True)
    validate.finite(max_upload_mp, "--max-upload-mp", lo=0, hi=64, lo_open=True)
    validate.device(device)
    if models is not None and not models.is_dir():
        raise ValueError(f"--models {models}: not a folder")
    try:
        import uvicorn

        from ..app.server import create_app
    except ImportError as e:
        raise ValueError(f"the studio needs the ui extras ({e.name} is missing): "
                         "pip install 'ganprior[ui]'") from None
    # on the loopback address only local names are answered (a web page elsewhere cannot
    # reach the studio by DNS rebinding); on another address, any name the network uses
    local = host in LOOPBACK
    app = create_app(model_dir=models, device=device, session_ttl=session_ttl,
                     max_sessions=max_sessions, max_upload_bytes=int(max_upload_mb * 2**20),
                     max_upload_pixels=int(max_upload_mp * 1e6),
                     allowed_hosts=["127.0.0.1", "localhost"] if local else None)
    console.print(f"ganprior studio on http://{host}:{port} (Ctrl+C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning", ws_max_size=5 << 20)
