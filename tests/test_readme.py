"""The README's examples are doctests (outputs shown are checked), and its test command is CI's."""

import doctest
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def run_doctests(text: str) -> doctest.TestResults:
    """Every ``>>>`` line of every python block, in order, in one namespace."""
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    globs: dict = {}
    for index, block in enumerate(python_blocks(text)):
        test = parser.get_doctest(block, globs, f"README.md block {index}", str(README), 0)
        runner.run(test, clear_globs=False)
    return runner.summarize(verbose=False)


def test_readme_examples_are_doctests_and_pass():
    text = README.read_text()
    blocks = python_blocks(text)
    assert len(blocks) >= 2
    for block in blocks:  # every line is a prompt, a continuation or a checked output
        assert block.lstrip().startswith(">>> "), block[:40]
    results = run_doctests(text)
    assert results.attempted >= 10 and results.failed == 0, results


def test_a_wrong_output_in_the_readme_fails():
    wrong = "```python\n>>> round(0.7046, 4)  # stuck near 1/2\n0.5\n```\n"
    assert run_doctests(wrong).failed == 1


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    assert commands[0] == "pip install -e . && ualign demo"
    assert commands[1] == (
        'pip install -e ".[test]" && ruff check . && ruff format --check . '
        "&& python -m pytest -n auto"
    )
    assert "<!-- test-command -->\n```bash\n" + commands[1] in text


def test_readme_says_where_to_start():
    text = README.read_text()
    assert "docs/theory.md" in text
    order = [text.index(f"`{name}.ipynb`") for name in NOTEBOOK_ORDER]
    assert order == sorted(order)
    for words in ('".[notebooks]"', '".[peers]"', "The tests take about", "Bring your own data"):
        assert words in text


NOTEBOOK_ORDER = ("quickstart", "theory_tour", "sushi_study", "accelerator_scaling")
