"""`ganprior models` and `ganprior info`."""
from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from .common import _load, console, user_errors


@user_errors
def models():
    """List the embedded default models: resolution, latent spaces, availability, source."""
    from ..checkpoints import zoo_entries
    from rich.table import Column
    entries = list(zoo_entries().values())
    # the long source texts go below the table, so the table fits an 80-column terminal
    table = Table(Column("name", no_wrap=True), Column("arch", no_wrap=True), "res",
                  "latent spaces", "status", box=None, header_style="bold", pad_edge=False)
    for e in entries:
        status = e.availability()
        table.add_row(e.name, e.arch, f"{e.resolution} px", ", ".join(e.latent_spaces),
                      "[green]ok[/]" if status == "ok" else "[red]missing[/]")
    console.print(table)
    console.print()
    for e in entries:
        status = e.availability()
        console.print(f"[bold]{e.name}[/]: {escape(e.source)}"
                      + ("" if status == "ok" else f"\n  [red]{escape(status)}[/]"))
    console.print("\nAny --model also accepts a path: NVIDIA .pkl, rosinality .pt, "
                  "ganprior .safetensors (+ .json). Details: `ganprior info NAME`.")


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 10_000 else f"{n:,}"


def summary_lines(G, nets: dict, model: str) -> list[tuple[str, str]]:
    """(field, text) pairs of `info`'s readable summary."""
    from ..checkpoints import zoo_entries
    d = G.describe()
    meta = nets.get("meta", {})
    prov = meta.get("provenance", {}) or {}
    lines = [("model", str(meta.get("name", model))),
             ("architecture", f"{d['arch']}, {d['resolution']}x{d['resolution']} px, "
                              f"{G.img_channels} channels")]
    latents = [f"z {d['z_dim']}"]
    if "w" in d["latent_spaces"]:
        latents += [f"w {d['w_dim']}", f"w+ {d['num_ws']} x {d['w_dim']}"]
    lines.append(("latents", ", ".join(latents)
                  + (f"; {d['c_dim']} classes" if d.get("c_dim") else "")))
    lines.append(("split layers", ", ".join(d["layers"]) + "  (mGANprior --layer, "
                                                           "analyze-layers --blocks)"))
    params = f"G {_millions(d['params'])}"
    if "D" in nets:
        params += f", D {_millions(sum(p.numel() for p in nets['D'].parameters()))}"
    lines.append(("parameters", params + ("" if "D" in nets else " (no discriminator)")))
    source = meta.get("source", "?")
    what = prov.get("summary") or prov.get("package") or prov.get("converted_from")
    lines.append(("source", f"{source}" + (f": {what}" if what else "")))
    quality = prov.get("quality") or {}
    if "c2st_mean" in quality:
        lines.append(("quality", f"C2ST {quality['c2st_mean']:.2f} over "
                                 f"{len(quality.get('c2st_seeds', []))} seeds "
                                 "(0.5 = indistinguishable from the training data)"))
    if prov.get("kimg") is not None:
        hours = prov.get("training_seconds", 0) / 3600
        lines.append(("training", f"{prov['kimg']:g} kimg" + (f", {hours:.1f} h on "
                                                               f"{prov['hardware']}"
                                                               if prov.get("hardware") else "")))
    if prov.get("license"):
        lines.append(("license", str(prov["license"])))
    zoo = zoo_entries()
    name = meta.get("name", model)
    lines.append(("zoo", f"{name}: {zoo[name].availability()}" if name in zoo and model in zoo
                  else "not a zoo model (loaded from a file)"))
    return lines


def label_model_lines(G, nets: dict, model: str) -> list[tuple[str, str]]:
    """(field, text) pairs of `info` for a label-to-image (pix2pixHD) model."""
    from ..checkpoints import zoo_entries
    meta = nets.get("meta", {})
    prov = meta.get("provenance", {}) or {}
    p2p = prov.get("pix2pixhd") or {}
    size = p2p.get("resolution")
    lines = [("model", str(meta.get("name", model))),
             ("architecture", f"{G.arch}" + (f", trained at {size[0]}x{size[1]} px" if size
                                              else ""))]
    classes = p2p.get("classes")
    label_nc = p2p.get("label_nc")
    if label_nc is not None:
        lines.append(("input", "RGB image" if label_nc == 0 else
                      f"label map of {label_nc} classes"
                      + (f" ({', '.join(map(str, classes))})" if classes else "")
                      + ("; instance map" if p2p.get("instance") else "")
                      + (f"; {p2p['feat_num']}-d instance features" if p2p.get("feat_num")
                         else "")))
    params = ", ".join(f"{k} {_millions(sum(p.numel() for p in nets[k].parameters()))}"
                       for k in ("G", "D", "E") if k in nets)
    lines.append(("parameters", params))
    source = meta.get("source", "?")
    lines.append(("source", f"{source}" + (f": {prov['summary']}" if prov.get("summary")
                                            else "")))
    if prov.get("epoch") is not None:
        hours = (prov.get("train_seconds") or 0) / 3600
        lines.append(("training", f"{prov['epoch']} epochs, {hours:.1f} h"
                      + (f" on {prov['hardware']}" if prov.get("hardware") else "")))
    zoo = zoo_entries()
    name = meta.get("name", model)
    lines.append(("zoo", f"{name}: {zoo[name].availability()}" if name in zoo and model in zoo
                  else "not a zoo model (loaded from a file)"))
    return lines


@user_errors
def info(model: str = typer.Argument(..., help="Zoo name or checkpoint path."),
         as_json: bool = typer.Option(False, "--json", help="Print everything the checkpoint "
                                      "records (architecture and full provenance) as JSON.")):
    """Describe a model: architecture, resolution, latent sizes, split layers, parameters,
    provenance summary and zoo status (--json: the raw record)."""
    from ..nets.base import GeneratorBase
    nets = _load(model, "cpu", latent=False)
    G = nets["G"]
    latent = isinstance(G, GeneratorBase)
    if as_json:
        out = G.describe() if latent else {"arch": G.arch, "config": G.config}
        out["has_discriminator"] = "D" in nets
        out["meta"] = nets["meta"]
        console.print_json(json.dumps(out, default=str, allow_nan=False))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, text in (summary_lines if latent else label_model_lines)(G, nets, model):
        table.add_row(key, escape(text))
    console.print(table)
