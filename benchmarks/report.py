"""Write a benchmark's table into its own marked section of BENCHMARKS.md."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_section(key: str, title: str, table: str):
    """Replace the block between <!-- key:begin --> and <!-- key:end -->, or append a section."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{table}\n{end}"
    if begin in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text += f"\n## {title}\n\n{block}\n"
    path.write_text(text)
