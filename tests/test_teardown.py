"""What `teardown` is for: after a request that raised, the next request must not find
the failed request's session and transaction still open."""

from __future__ import annotations

import pytest

from helpers import FIXTURES, copy_tree, serve_requests

SEQUENCE = [{"method": "GET", "path": "/boom"}, {"method": "GET", "path": "/state"}]
# (case, the directory of its tree the app runs from)
CASES = [("alias-import", "."), ("stray-root-init", "repo")]


@pytest.mark.parametrize(("case", "root"), CASES)
def test_failed_request_leaks_its_transaction_before(tmp_path, case, root):
    tree = copy_tree(FIXTURES / "teardown" / case / "before", tmp_path / "app")
    boom, state = serve_requests(tree / root, "app:app", SEQUENCE)
    assert boom["status"] == 500
    assert state["body"].strip() == '{"in_transaction":true}'


@pytest.mark.parametrize(("case", "root"), CASES)
def test_next_request_gets_a_clean_session_after(tmp_path, case, root):
    tree = copy_tree(FIXTURES / "teardown" / case / "after", tmp_path / "app")
    boom, state = serve_requests(tree / root, "app:app", SEQUENCE)
    assert boom["status"] == 500
    assert state["body"].strip() == '{"in_transaction":false}'
