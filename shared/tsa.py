"""Trusted time for checkpoints: an RFC 3161 time-stamp client.

A time-stamp authority (TSA) signs "these bytes existed at this time" without seeing the bytes:
the request carries only their SHA-256 (the message imprint), a random nonce and `certReq` (so
the TSA puts its certificate in the token). The answer is a TimeStampResp; what is kept is its
TimeStampToken, a CMS SignedData (DER ContentInfo) whose content is the TSTInfo: the imprint, the
TSA's time (`genTime`), a serial number, the TSA's policy and, often, its name.

This module builds the request, fetches and checks the answer (status granted, the imprint is
that of our bytes, the nonce is ours) and reads stored tokens back. It does not check the TSA's
signature: that is for `openssl ts -verify` with the TSA's CA certificate, which a person can run
years later without kriselogg (docs/operations.md, "Trusted time (RFC 3161)"):

    openssl ts -verify -data checkpoint.txt -in token.tst -token_in -CAfile tsa-ca.pem \\
        -attime <genTime as Unix seconds>
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from asn1crypto import algos, cms, core, tsp

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
_GRANTED = {"granted", "granted_with_mods"}
_DIGESTS = {"sha256", "sha384", "sha512"}
# What asn1crypto raises on malformed DER, eagerly or when a lazily parsed field is read.
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


class TsaError(Exception):
    """The time-stamp authority could not be reached, refused, or answered something unusable."""


class _TimeStampResp(tsp.TimeStampResp):  # type: ignore[misc]
    # RFC 3161 §2.4.2: the token is OPTIONAL (absent when the status is not granted);
    # asn1crypto's own class requires it, so a refusal could not be read.
    _fields = [  # noqa: RUF012 (asn1crypto's class attribute)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class TokenInfo:
    """What a stored token says, for documents and people."""

    gen_time: datetime  # the TSA's time, aware, UTC
    serial: int
    tsa: str  # the TSA's name in the token, else its signing certificate's subject; may be ""
    digest_hex: str  # the message imprint (SHA-256 of the time-stamped bytes, as hex)
    policy: str  # the TSA policy's object identifier, dotted


def timestamp_request(data: bytes, *, nonce: int | None = None) -> bytes:
    """A DER TimeStampReq for the SHA-256 of `data`, asking for the TSA's certificate."""
    if nonce is None:
        nonce = secrets.randbits(64)
    if nonce < 0:
        raise ValueError("a nonce is a non-negative integer")
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "hashed_message": hashlib.sha256(data).digest(),
            },
            "nonce": nonce,
            "cert_req": True,
        }
    )
    return bytes(request.dump())


async def fetch_timestamp(
    url: str,
    data: bytes,
    *,
    client: httpx.AsyncClient | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 (httpx's per-request timeout, not a cancel scope)
) -> bytes:
    """Time-stamp `data` at the TSA at `url`; the DER TimeStampToken (a CMS ContentInfo).

    Raises TsaError, with the reason, when the TSA cannot be reached, answers other than HTTP 200,
    refuses, or answers a token that is unreadable or is not for these bytes and this request.
    """
    nonce = secrets.randbits(64)
    query = timestamp_request(data, nonce=nonce)
    headers = {"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE}
    try:
        if client is None:
            async with httpx.AsyncClient(timeout=timeout) as own:
                response = await own.post(url, content=query, headers=headers)
        else:
            response = await client.post(url, content=query, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise TsaError(
            f"the time-stamp authority at {url} did not answer: {_describe_exception(exc)}"
        ) from exc
    if response.status_code != 200:
        raise TsaError(
            f"the time-stamp authority at {url} answered HTTP {response.status_code} "
            f"instead of a time-stamp reply"
        )
    return _check_reply(url, response.content, hashlib.sha256(data).digest(), nonce)


def describe(token: bytes) -> TokenInfo:
    """Read a stored token (DER ContentInfo). Raises TsaError when it is not a readable token."""
    content_info = _load_token(token)
    try:
        tst = _tst_info(content_info)
        gen_time = tst["gen_time"].native
        if not isinstance(gen_time, datetime):  # asn1crypto's extended_datetime: year 0
            raise TsaError(f"the token's time is out of range: {gen_time!r}")
        return TokenInfo(
            gen_time=gen_time.astimezone(UTC),
            serial=int(tst["serial_number"].native),
            tsa=_tsa_name(content_info, tst),
            digest_hex=bytes(tst["message_imprint"]["hashed_message"].native).hex(),
            policy=str(tst["policy"].dotted),
        )
    except _PARSE_ERRORS as exc:
        raise TsaError(f"the time-stamp token is malformed: {exc}") from exc


def token_matches(token: bytes, data: bytes) -> bool:
    """Whether the token's message imprint is the digest of `data` (SHA-256, or SHA-384/512 for a
    token made elsewhere). False for a token that cannot be read (`describe` says why).

    This is not a signature check: that is `openssl ts -verify` with the TSA's CA certificate.
    """
    try:
        imprint = _tst_info(_load_token(token))["message_imprint"]
        algorithm = str(imprint["hash_algorithm"]["algorithm"].native)
        hashed = bytes(imprint["hashed_message"].native)
    except (TsaError, *_PARSE_ERRORS):
        return False
    if algorithm not in _DIGESTS:
        return False
    return secrets.compare_digest(hashed, hashlib.new(algorithm, data).digest())


# ---------------------------------------------------------------- parsing


def _describe_exception(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_reply(url: str, body: bytes, digest: bytes, nonce: int) -> bytes:
    where = f"the time-stamp authority at {url}"
    try:
        reply = _TimeStampResp.load(body, strict=True)
        status_info = reply["status"]
        status = status_info["status"].native
    except _PARSE_ERRORS as exc:
        raise TsaError(
            f"{where} answered something that is not a time-stamp reply ({exc})"
        ) from exc
    if status not in _GRANTED:
        raise TsaError(f"{where} refused the request: {_refusal(status, status_info)}")
    token = reply["time_stamp_token"]
    if isinstance(token, core.Void):
        raise TsaError(f"{where} granted the request but sent no token")
    try:
        tst = _tst_info(token)
        imprint = tst["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        hashed = bytes(imprint["hashed_message"].native)
        got_nonce = tst["nonce"].native
    except TsaError as exc:
        raise TsaError(f"{where} answered an unusable token: {exc}") from exc
    except _PARSE_ERRORS as exc:
        raise TsaError(f"{where} answered a malformed token ({exc})") from exc
    if algorithm != "sha256" or not secrets.compare_digest(hashed, digest):
        raise TsaError(f"{where} answered a token for other data (its message imprint differs)")
    if got_nonce != nonce:
        raise TsaError(
            f"{where} answered a token for another request (nonce {got_nonce!r}, "
            f"we sent {nonce}): a replayed or mixed-up answer"
        )
    return bytes(token.dump())


def _refusal(status: object, status_info: Any) -> str:
    """E.g. "rejection (bad_alg): Message digest algorithm is not supported." """
    text = str(status)
    try:
        failures = status_info["fail_info"].native
        if failures:
            text += " (" + ", ".join(sorted(str(f) for f in failures)) + ")"
        texts = status_info["status_string"].native
        if texts:
            text += ": " + " ".join(str(t) for t in texts)
    except _PARSE_ERRORS:
        pass
    return text


def _load_token(token: bytes) -> Any:
    try:
        content_info = cms.ContentInfo.load(token, strict=True)
        content_type = content_info["content_type"].native
    except _PARSE_ERRORS as exc:
        raise TsaError(f"the time-stamp token is not DER CMS ({exc})") from exc
    if content_type != "signed_data":
        raise TsaError(f"the time-stamp token is CMS {content_type}, not signed data")
    return content_info


def _tst_info(content_info: Any) -> Any:
    if content_info["content_type"].native != "signed_data":
        raise TsaError("the token is not CMS signed data")
    encap = content_info["content"]["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise TsaError(f"the token signs {encap['content_type'].native}, not a TSTInfo")
    return encap["content"].parsed


def _tsa_name(content_info: Any, tst: Any) -> str:
    name = tst["tsa"]
    if not isinstance(name, core.Void) and name.native is not None:
        chosen = name.chosen
        if name.name == "directory_name":
            return str(chosen.human_friendly)
        return str(chosen.native)
    signed = content_info["content"]
    signers = signed["signer_infos"]
    if len(signers) == 0:
        return ""
    sid = signers[0]["sid"]
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (
                cert.issuer == wanted["issuer"]
                and cert.serial_number == wanted["serial_number"].native
            ):
                return str(cert.subject.human_friendly)
        elif cert.key_identifier == sid.chosen.native:
            return str(cert.subject.human_friendly)
    return ""
