"""Trusted time: RFC 3161 tokens from a real TSA (`openssl ts -reply`, tests/tsa_server.py), read
back by shared.tsa and verified by the real `openssl ts -verify`, as a person would years later.

No date is assumed: times are compared with this process's clock, which is the TSA's clock too
(also under libfaketime, see tests/tsa_server.py).
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from asn1crypto import tsp

from shared.tsa import TsaError, describe, fetch_timestamp, timestamp_request, token_matches
from tests.tsa_server import POLICY, VALID_DAYS, LocalTsa, openssl

CHECKPOINT = (
    "kriselogg.example/demo\n"
    "4711\n"
    "n2Dmc6GqGjSj8vH5y1F8k8wDq5Y2B1kYH6m7pNbC3xU=\n"
    "\n"
    "\u2014 kriselogg.example/demo Az3grqQ1IeGSZuCb4P0aY8SrjHVeDu0FMBwWKy0qRDdRgyxTG6wM\n"
).encode()


def _verify(
    tsa: LocalTsa, tmp_path: Path, token: bytes, data: bytes, *extra: str
) -> tuple[int, str]:
    """`openssl ts -verify` as docs/operations.md tells a person to run it."""
    data_file, token_file = tmp_path / "checkpoint.txt", tmp_path / "checkpoint.tst"
    data_file.write_bytes(data)
    token_file.write_bytes(token)
    result = openssl(
        "ts", "-verify", "-data", data_file, "-in", token_file, "-token_in",
        "-CAfile", tsa.ca_file, *extra, check=False,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
async def token(tsa_url: str) -> bytes:
    return await fetch_timestamp(tsa_url, CHECKPOINT)


async def test_a_token_says_when_and_for_what(tsa_url: str) -> None:
    before = datetime.now(UTC)
    token = await fetch_timestamp(tsa_url, CHECKPOINT)
    after = datetime.now(UTC)

    info = describe(token)
    assert info.gen_time.tzinfo is not None and info.gen_time.utcoffset() == timedelta(0)
    # The TSA's clock is ours; it states the time to the millisecond, accurate to a second.
    assert before - timedelta(seconds=2) <= info.gen_time <= after + timedelta(seconds=2)
    assert info.digest_hex == hashlib.sha256(CHECKPOINT).hexdigest()
    assert info.policy == POLICY
    assert info.serial > 0
    assert "kriselogg test TSA" in info.tsa and "root CA" not in info.tsa


async def test_each_token_has_its_own_serial(tsa_url: str) -> None:
    first = describe(await fetch_timestamp(tsa_url, CHECKPOINT))
    second = describe(await fetch_timestamp(tsa_url, CHECKPOINT))
    assert first.serial != second.serial
    assert first.gen_time <= second.gen_time


async def test_openssl_accepts_the_token(local_tsa: LocalTsa, token: bytes, tmp_path: Path) -> None:
    code, output = _verify(local_tsa, tmp_path, token, CHECKPOINT)
    assert code == 0, output
    assert "Verification: OK" in output
    # What a person reads in it, as docs/operations.md shows.
    text = openssl("ts", "-reply", "-in", tmp_path / "checkpoint.tst", "-token_in", "-text").stdout
    info = describe(token)
    assert f"Policy OID: {POLICY}" in text
    assert f"Serial number: 0x{info.serial:02X}" in text
    assert "Time stamp: " + info.gen_time.strftime("%b %e %H:%M:%S") in text


async def test_openssl_refuses_the_token_for_other_data(
    local_tsa: LocalTsa, token: bytes, tmp_path: Path
) -> None:
    other = CHECKPOINT.replace(b"4711", b"4712")
    code, output = _verify(local_tsa, tmp_path, token, other)
    assert code != 0
    assert "Verification: FAILED" in output


async def test_openssl_refuses_the_token_under_another_ca(token: bytes, tmp_path: Path) -> None:
    # The CA certificate is what makes the token trusted: another TSA's CA does not vouch for it.
    with LocalTsa.start() as other_tsa:
        code, output = _verify(other_tsa, tmp_path, token, CHECKPOINT)
    assert code != 0, output


async def test_years_later_verify_at_the_time_of_the_token(
    local_tsa: LocalTsa, token: bytes, tmp_path: Path
) -> None:
    """The TSA's certificate expires (here after VALID_DAYS): verified later, openssl must be told
    to check it as of the token's own time, as docs/operations.md says (`-attime`)."""
    gen_time = int(describe(token).gen_time.timestamp())
    later = gen_time + (VALID_DAYS + 1) * 86400
    code, output = _verify(local_tsa, tmp_path, token, CHECKPOINT, "-attime", str(later))
    assert code != 0 and "expired" in output
    code, output = _verify(local_tsa, tmp_path, token, CHECKPOINT, "-attime", str(gen_time))
    assert code == 0, output


async def test_token_matches_only_its_data(token: bytes) -> None:
    assert token_matches(token, CHECKPOINT)
    assert not token_matches(token, CHECKPOINT + b"\n")
    assert not token_matches(token, b"")


def test_unreadable_tokens() -> None:
    for junk in (b"", b"\x30\x03\x02\x01\x01", b"not a token", timestamp_request(CHECKPOINT)):
        assert not token_matches(junk, CHECKPOINT)
        with pytest.raises(TsaError, match="token"):
            describe(junk)


async def test_a_tsa_without_its_name_in_the_token_is_named_by_its_certificate(
    local_tsa: LocalTsa,
) -> None:
    info = describe(await fetch_timestamp(local_tsa.url_for("anonymous"), CHECKPOINT))
    assert "kriselogg test TSA" in info.tsa and "root CA" not in info.tsa


async def test_a_client_of_the_caller_is_used(tsa_url: str) -> None:
    async with httpx.AsyncClient() as client:
        token = await fetch_timestamp(tsa_url, CHECKPOINT, client=client)
        again = await fetch_timestamp(tsa_url, b"another checkpoint", client=client)
    assert token_matches(token, CHECKPOINT)
    assert token_matches(again, b"another checkpoint")


def test_the_request_is_what_openssl_reads(tmp_path: Path) -> None:
    query = tmp_path / "q.tsq"
    query.write_bytes(timestamp_request(CHECKPOINT, nonce=0xC0FFEE))
    text = openssl("ts", "-query", "-in", query, "-text").stdout
    assert "Hash Algorithm: sha256" in text
    assert "Nonce: 0xC0FFEE" in text
    assert "Certificate required: yes" in text
    digest = hashlib.sha256(CHECKPOINT).digest()
    request = tsp.TimeStampReq.load(query.read_bytes())
    assert request["message_imprint"]["hashed_message"].native == digest


def test_nonces_are_random_64_bit() -> None:
    nonces = {
        tsp.TimeStampReq.load(timestamp_request(CHECKPOINT))["nonce"].native for _ in range(50)
    }
    assert len(nonces) == 50
    assert all(0 <= n < 2**64 for n in nonces)
    assert max(nonces) >= 2**56  # drawn from 64 bits, not fewer


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("refuse", r"refused the request: rejection \(bad_alg\)"),
        ("wrong-nonce", "nonce"),
        ("other-data", "for other data"),
        ("garbage", "not a time-stamp reply"),
        ("error", "HTTP 500"),
        ("no-such-path", "HTTP 404"),
    ],
)
async def test_a_tsa_that_answers_wrong_is_a_tsa_error(
    local_tsa: LocalTsa, mode: str, reason: str
) -> None:
    with pytest.raises(TsaError, match=reason):
        await fetch_timestamp(local_tsa.url_for(mode), CHECKPOINT)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield int(sock.getsockname()[1])


async def test_a_tsa_that_does_not_answer_is_a_tsa_error(silent_port: int) -> None:
    with pytest.raises(TsaError, match="did not answer: ReadTimeout"):
        await fetch_timestamp(f"http://127.0.0.1:{silent_port}/", CHECKPOINT, timeout=0.3)


async def test_no_tsa_at_all_is_a_tsa_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TsaError, match="did not answer: ConnectError"):
        await fetch_timestamp(f"http://127.0.0.1:{port}/", CHECKPOINT)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (bytes.fromhex("3005300302010030"), "not a time-stamp reply"),  # trailing byte
        (bytes.fromhex("30053003020100"), "granted the request but sent no token"),
        (bytes.fromhex("300a3003020100300306012a"), "unusable token: .* not CMS signed data"),
        (bytes.fromhex("3005300302010300"), "not a time-stamp reply"),
        (bytes.fromhex("30053003020105"), "refused the request: revocation_notification"),
    ],
)
async def test_replies_that_are_no_token(body: bytes, reason: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/timestamp-query"
        assert request.headers["accept"] == "application/timestamp-reply"
        return httpx.Response(200, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(TsaError, match=reason):
            await fetch_timestamp("http://tsa.invalid/", CHECKPOINT, client=client)
