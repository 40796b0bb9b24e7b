"""The README's Python example runs, and its test command is the one CI runs."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs(capsys):
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert float(printed[0]) >= 0.8 - 1e-6  # robust win rate of the k=4 solution >= 4/5 - eps


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    assert commands[0] == "pip install -e . && ualign demo"
    assert commands[1] == (
        'pip install -e ".[test]" && ruff check . && ruff format --check . && python -m pytest'
    )
    assert "<!-- test-command -->\n```bash\n" + commands[1] in text
