"""The other bytes the proxy reads off sockets: the egress's answer line on the forwarding hop and the
control endpoint's requests. Each case below was once accepted or escaped as a plain exception (an
``internal-error`` for the connection, or a value broadcast to every edge)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegisfwd.proxy import answer, control


@pytest.mark.parametrize(
    ("line", "src", "port"),
    [
        (b"OK 127.0.0.1 40000\n", "127.0.0.1", 40000),
        (b"OK ::1 1\n", "::1", 1),
        (b"OK 2001:DB8::1 65535", "2001:db8::1", 65535),
    ],
)
def test_ok_answers(line: bytes, src: str, port: int) -> None:
    assert answer.parse_answer(line) == answer.EgressAnswer(src=src, port=port)
    assert answer.parse_answer(answer.ok(src, port)) == answer.EgressAnswer(src=src, port=port)


def test_err_answers_carry_a_bounded_code() -> None:
    assert answer.parse_answer(b"ERR not-holder\n").reason == "not-holder"
    assert answer.parse_answer(answer.err("egress-down")).reason == "egress-down"


@pytest.mark.parametrize(
    "line",
    [
        b"OK 1.2.3.4 x\n",  # int() raised ValueError: the client's connection ended as internal-error
        b"OK 1.2.3.4 \xd9\xa3\n",  # an Arabic-Indic digit, which int() reads as 3
        b"OK 1.2.3.4 +1\n",
        b"OK 1.2.3.4 0\n",
        b"OK 1.2.3.4 99999\n",
        b"OK not-an-address 5\n",  # was journaled as the source address
        b"OK 1.2.3.4 5 6\n",
        b"ERR\n",
        b"ERR " + b"x" * 65 + b"\n",  # a refusal code is a metric label: bounded
        b"ERR Not Holder\n",
        b"\xff\xfe\n",
        b"",
    ],
)
def test_bad_answers_are_refused(line: bytes) -> None:
    with pytest.raises(answer.BadAnswer):
        answer.parse_answer(line)


@given(st.binary(max_size=120))
def test_any_answer_line_parses_or_is_refused(line: bytes) -> None:
    try:
        a = answer.parse_answer(line)
    except answer.BadAnswer:
        return
    assert (a.src is None) != (a.reason is None)


def test_control_head() -> None:
    r = control.parse_head(b"POST /state?x=1&reset HTTP/1.1\r\nContent-Length: 12\r\nHost: a\r\n\r\n")
    assert (r.route, r.query, r.content_length) == ("POST /state", {"x": "1", "reset": ""}, 12)
    assert control.parse_head(b"GET /status HTTP/1.0\r\n\r\n").content_length == 0


@pytest.mark.parametrize(
    "head",
    [
        b"POST /state HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n",  # int() accepted 10
        b"POST /state HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        b"POST /state HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
        b"POST /state HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET /status HTTP/1.1 extra\r\n\r\n",
        b"GET status HTTP/1.1\r\n\r\n",
        b"GET /status SPDY/3\r\n\r\n",
        b"\r\n\r\n",
    ],
)
def test_bad_control_heads_are_400(head: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the endpoint answers any ValueError with a 400
        control.parse_head(head)


def test_state_request() -> None:
    assert control.state_request(b'{"target": "l1d1s1", "state": "down"}') == ("l1d1s1", "down")
    for body in (b'{"target": 5, "state": "down"}', b"[1]", b"{", b"\xff", b"[" * 100000):
        with pytest.raises(ValueError):  # noqa: PT011
            control.state_request(body)


def test_mode_request_takes_only_an_address() -> None:
    assert control.mode_request(b'{"fixed_source": "127.0.0.7"}') == "127.0.0.7"
    assert control.mode_request(b'{"fixed_source": "2001:DB8::7"}') == "2001:db8::7"
    assert control.mode_request(b'{"fixed_source": null}') is None
    assert control.mode_request(b"") is None
    # Once accepted and broadcast: every edge then bound each client connection to it and failed
    # (internal-error) until the mode was switched back.
    for body in (b'{"fixed_source": 5}', b'{"fixed_source": "not an ip"}', b'{"fixed_source": ["::1"]}'):
        with pytest.raises(ValueError, match="fixed_source"):
            control.mode_request(body)
