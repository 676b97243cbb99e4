"""The command-line half of the conformance matrix: every bad file or path in the table of
tests/test_cli_bad_input.py is one line naming the problem, exit code 2, nothing written.

The table, the files it refers to and the check are that module's (owned with the CLI); this
module runs them as part of the matrix so that ``pytest tests/conformance`` covers the whole
contract, and a new bad input added to the table joins the matrix.
"""

from __future__ import annotations

import pytest

from ..test_cli_bad_input import BAD_INPUTS, check_bad_input, make_cli_files


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conformance-cli")
    make_cli_files(folder)
    return folder


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[f"cli-{c.id}" for c in BAD_INPUTS])
def test_cli_bad_input(case, cli_files):
    check_bad_input(case, cli_files)
