"""What every command module shares: the console, the common options, one-line errors, loading."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import typer
import typer.core
from rich.console import Console

try:  # typer >= 0.22 vendors click as typer._click; older versions raise click's own classes
    from typer._click import echo
    from typer._click import exceptions as click_errors
    from typer.exceptions import Abort
except ImportError:  # pragma: no cover
    from click import echo
    from click import exceptions as click_errors
    from click.exceptions import Abort

from ..errors import GanpriorError

console = Console()


ModelOpt = typer.Option("dcgan-digiface64", "--model", "--network", "-m",
                        help="Zoo name (see `ganprior models`) or checkpoint path "
                             "(--network: NVIDIA's spelling).")
StyleModelOpt = typer.Option(None, "--model", "--network", "-m", show_default=False,
                             help="Zoo name (see `ganprior models`) or checkpoint path "
                                  "(--network: NVIDIA's spelling) "
                                  "(default: stylegan2-digiface64 for W-space work: mixing, "
                                  "editing, --method w, w+, padinv; else dcgan-digiface64).")
DeviceOpt = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps.")
NoiseOpt = typer.Option("const", "--noise-mode",
                        help="StyleGAN2 per-pixel noise: const (reproducible) | random | none.")
TruncOpt = typer.Option(1.0, "--trunc", help="Truncation psi: 1 = none, <1 = closer to average.")
CutoffOpt = typer.Option(None, "--trunc-cutoff", show_default="all",
                         help="Truncate only the first N ws (StyleGAN2).")
ClassOpt = typer.Option(None, "--class", show_default="none",
                        help="Class index for conditional models.")


def OutOpt(default, help: str = "Output folder.", file: bool = False):
    """The output option of a command: `--out`, with NVIDIA's `--outdir` as an alias.
    `--out` names a folder everywhere; pass `file=True` (and say so in `help`) for the few
    commands whose output is one file (docs/cli.md lists them)."""
    kind = "file" if file else "folder"
    return typer.Option(Path(default), "--out", "--outdir", metavar=kind.upper(),
                        help=f"{help} (--outdir: NVIDIA's spelling.)")


def StepsOpt(default: int, help: str = "Optimisation steps per image.", min: int = 0):
    """`--steps`, with `--num-steps` (NVIDIA's projector) as an alias."""
    return typer.Option(default, "--steps", "--num-steps", min=min,
                        help=f"{help} (--num-steps: NVIDIA's spelling.)")


def finish_run(report, out, describe) -> None:
    """What `invert` and the restoration commands print after a folder run: the loss
    fallback (once), one line per result (`describe(record)`), how many were skipped, where the
    results are; then one `error:` line (exit 1) if any input failed, naming the first."""
    from pathlib import Path
    if report.records:
        say_loss_note(report.records[0])
    for r in report.records:
        console.print(describe(r))
    if report.skipped:
        console.print(f"skipped {report.skipped} already done with the same settings")
    console.print(f"results in {out}")
    if report.failures:
        (name, why), n_bad = report.failures[0], len(report.failures)
        total = n_bad + len(report.records) + report.skipped
        more = f" (and {n_bad - 1} more, listed in summary.json)" if n_bad > 1 else ""
        raise ValueError(f"{n_bad} of {total} inputs failed: {Path(name).name}: {why}{more}")


def say_loss_note(loss_info: dict) -> None:
    """Say on stderr which loss ran when `--loss auto` had to fall back (VGG16 weights
    missing, observations too small for MS-SSIM); silent when nothing was replaced.
    `loss_info` is a run's record (InversionResult.loss_info / ReconstructionLoss.describe())."""
    note = (loss_info or {}).get("note")
    if note:
        typer.echo(f"note: --loss auto used {loss_info.get('loss', '?')}: {note}", err=True)


def _fail(msg: str):
    from ..progress import close_bars
    close_bars()  # a bar left half-drawn would swallow the start of the error line
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(1)


def user_errors(fn):
    """Turn the errors a user can cause into one line on stderr and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (GanpriorError, ValueError, FileNotFoundError, PermissionError) as e:
            _fail(str(e))
        except OSError as e:  # full disk, read-only folder, --out that is a file, ...
            _fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))
        except (RecursionError, MemoryError):
            _fail("input too large or too deeply nested")
        except KeyboardInterrupt:
            _fail("interrupted")
    return wrapper


class OneLineUsageErrors(typer.core.TyperGroup):
    """Usage errors (unknown option, missing argument, bad value) as one `error:` line on
    stderr and exit status 2, instead of click's multi-line box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as e:  # `ganprior` alone: the help, status 2
            text = e.ctx.get_help() if e.ctx else e.format_message()  # typer prints rich help
            if text:
                echo(text)
            sys.exit(2)
        except click_errors.UsageError as e:
            where = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
            echo(f"error: {e.format_message()}{where}", err=True)
            sys.exit(2)
        except Abort:
            echo("error: aborted", err=True)
            sys.exit(1)
        except click_errors.ClickException as e:  # e.g. a file option that cannot be opened
            echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


def _default_model(needs_w: bool) -> str:
    from ..checkpoints.zoo import default_model
    return default_model(needs_w)


def _load(model: str, device: str, latent: bool = True):
    """The networks of `model`; with `latent`, refuse a model that has no latent space (a
    pix2pixHD label-to-image model) before any command tries to sample or invert it."""
    from ..checkpoints import load_networks
    from ..device import pick_device
    from ..nets.base import GeneratorBase
    nets = load_networks(model, pick_device(device))
    if latent and not isinstance(nets["G"], GeneratorBase):
        raise ValueError(f"{model} is a {nets['G'].arch} label-to-image model with no latent "
                         "space: use it with `ganprior synth`")
    return nets


def _show_version(value: bool):
    if value:
        from .. import __version__
        typer.echo(f"ganprior {__version__}")
        raise typer.Exit()


def root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                      help="Print the version and exit.")):
    """The options of `ganprior` itself (before the command name)."""
