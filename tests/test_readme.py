"""README.md's examples run as written, it lists every command, and the docs cite nothing
outside the repository.

The rule for examples: every fenced block marked ```bash is an example. Each of its lines (a
trailing `# comment` aside; `\\` continues a line) must be one `ganprior ...` command; they run
in README order in one empty folder, in-process through the same typer app as the console
script (one process per command would spend most of the time importing torch), and each must
exit 0. Then every ```python block runs in that folder, so it may use what the commands made.
Blocks marked ```sh are installation and `make` commands and are not run.
"""
import re
import shlex
from pathlib import Path

import pytest
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(text: str, lang: str) -> list[str]:
    """The bodies of the fenced blocks of `lang`, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.M | re.S)


def commands(block: str) -> list[list[str]]:
    """One argument list per command line of a bash block."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        args = shlex.split(line, comments=True)
        if args:
            out.append(args)
    return out


def test_the_rule_reads_a_block_as_the_shell_would():
    text = "x\n```bash\nganprior a --b 'c d'  # note\n\nganprior e \\\n  --f 1\n```\n```sh\nmake\n```\n"
    assert [commands(b) for b in blocks(text, "bash")] == [
        [["ganprior", "a", "--b", "c d"], ["ganprior", "e", "--f", "1"]]]
    assert blocks(text, "sh") == ["make\n"]


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """Run every bash example, then every python example, in one empty folder."""
    folder = tmp_path_factory.mktemp("readme")
    shell = [args for b in blocks(README, "bash") for args in commands(b)]
    results, namespace = [], {"__name__": "__readme__"}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        # no optional weights, wherever a developer keeps some: the same run on every machine
        # (module scope: conftest's per-test GANPRIOR_WEIGHTS_ONLY is not set yet)
        mp.setenv("GANPRIOR_WEIGHTS", str(folder / "no-weights"))
        mp.setenv("GANPRIOR_WEIGHTS_ONLY", "1")
        for args in shell:
            assert args[0] == "ganprior", f"README bash line is not a ganprior command: {args}"
            results.append((args, run_cli(*args[1:], ok=False)))
            if results[-1][1].exit_code != 0:  # later commands use what this one writes
                break
        else:
            for code in blocks(README, "python"):
                exec(compile(code, "README.md", "exec"), namespace)
    return folder, shell, results, namespace


def test_readme_shell_examples_run(readme_run):
    folder, shell, results, _ = readme_run
    assert len(shell) >= 8  # "Try it" and "Bring your own checkpoint"
    for args, r in results:
        assert r.exit_code == 0, f"{shlex.join(args)}\n{r.output}{r.exception!r}"
    assert len(results) == len(shell)
    # what the walk-through says the commands make
    for made in ("out/faces/grid.png", "out/invert/seed0001_compare.png", "out/edit/strip.png",
                 "out/inpaint/seed0002.png", "my-model.json", "out/mine/seed0003.png"):
        assert (folder / made).is_file(), made
    metrics = [r.output for args, r in results if args[1] == "metrics"]
    assert metrics and all(k in metrics[0] for k in ("psnr", "ssim", "ms_ssim"))


def test_readme_python_example_runs(readme_run):
    import torch

    import ganprior
    folder, _, _, ns = readme_run
    assert ns, "the python example did not run (a shell example failed first)"
    assert "ganprior.load_generator(" in blocks(README, "python")[0]  # the natural entry point
    G, img = ns["G"], ns["img"]
    assert img.shape == (4, 3, G.img_resolution, G.img_resolution)
    assert torch.allclose(ns["same"], img, atol=1e-4)  # the split synthesis resumes exactly
    assert ganprior.load_image(folder / "face.png").shape == (1, 3, 64, 64)
    assert ns["s"].done and ns["t"].G is not G
    # the reloaded CLI result renders what the command saved (8-bit PNG: within one level)
    saved = ganprior.load_image(folder / "out" / "invert" / "seed0001.png")
    assert (ns["photo"].clamp(-1, 1) - saved).abs().max() <= 2 / 255 + 1e-6


def test_readme_lists_every_command():
    import typer

    from ganprior.cli import app
    rows = [line for line in README.splitlines() if line.startswith("| `ganprior ")]
    missing = []
    for name, cmd in typer.main.get_command(app).commands.items():
        mine = [r for r in rows if re.search(rf"`ganprior {re.escape(name)}[ `]", r)]
        subs = list(getattr(cmd, "commands", {}))  # a group: its subcommands in its row
        missing += [name] if not mine else [f"{name} {s}" for s in subs if not any(
            re.search(rf"\b{re.escape(s)}\b", r) for r in mine)]
    assert not missing, f"README's command table has no row for: {', '.join(missing)}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_cite_nothing_outside_the_repository(path):
    text = path.read_text()
    for pattern in (r"\.\./shared", r"\bSPEC\.md", r"MEASUREMENTS\.md",
                    r"\bcommits? [0-9a-f]{7,40}\b"):
        hit = re.search(pattern, text)
        assert hit is None, f"{path.name} cites {hit.group(0)!r}"
