"""What `teardown` is for: after a request that raised, the next request must not find
the failed request's session and transaction still open."""

from __future__ import annotations

from helpers import FIXTURES, copy_tree, serve_requests

CASE = FIXTURES / "teardown" / "alias-import"
SEQUENCE = [{"method": "GET", "path": "/boom"}, {"method": "GET", "path": "/state"}]


def test_failed_request_leaks_its_transaction_before(tmp_path):
    boom, state = serve_requests(copy_tree(CASE / "before", tmp_path / "app"), "app:app", SEQUENCE)
    assert boom["status"] == 500
    assert state["body"].strip() == '{"in_transaction":true}'


def test_next_request_gets_a_clean_session_after(tmp_path):
    boom, state = serve_requests(copy_tree(CASE / "after", tmp_path / "app"), "app:app", SEQUENCE)
    assert boom["status"] == 500
    assert state["body"].strip() == '{"in_transaction":false}'
