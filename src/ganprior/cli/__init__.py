"""`ganprior` command line: a thin shell over the library.

Every command takes `--model` as a zoo name (see `ganprior models`) or a checkpoint file
(NVIDIA .pkl, rosinality .pt, ganprior .safetensors + .json). Errors print one `error:` line
and exit 1; usage errors (unknown option, missing argument) print one `error:` line and exit 2.
"""
# One module per command group (models, generate, convert, invert, train, metrics, weights,
# data, demo); this file only builds `app` and registers the commands, in the order `--help`
# lists them. The modules import the library lazily inside each command, so `--help` is fast.
from __future__ import annotations

import typer

from . import (convert, data, demo, edit, generate, invert, metrics, models, restore, train,
               weights)
from .common import OneLineUsageErrors, root
from . import serve  # the drag studio (its ui extras are imported only when it runs)
from . import synth  # pix2pixHD synthesis and encode-features
from . import drag  # DragGAN point editing

app = typer.Typer(cls=OneLineUsageErrors, help=__doc__, no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, callback=root,
                  context_settings={"help_option_names": ["-h", "--help"]})

app.command()(models.models)
app.command()(models.info)
app.command()(generate.generate)
app.command()(generate.mix)
app.command()(convert.convert)
app.command()(invert.invert)
app.command("analyze-layers")(invert.analyze_layers)
app.command()(restore.colorize)
app.command("super-resolve")(restore.super_resolve)
app.command()(restore.inpaint)
app.command()(restore.denoise)
app.command()(edit.edit)
app.add_typer(edit.directions_app, name="directions")
app.command()(drag.drag)
app.command("train-encoder")(train.train_encoder_cmd)
app.command()(metrics.metrics)
app.command()(metrics.fid)
app.add_typer(weights.weights_app, name="weights")
app.add_typer(train.train_app, name="train")
app.add_typer(data.data_app, name="data")
app.command()(synth.synth)
app.command("encode-features")(synth.encode_features)
app.command()(demo.demo)
app.command()(serve.serve)


def main():  # pragma: no cover
    app()
