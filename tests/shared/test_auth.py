from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shared.auth import TokenError, issue_token, signing_key, verify_token
from shared.settings import Settings


def test_round_trip_carries_org_person_roles_and_name() -> None:
    token = issue_token(
        "k" * 32, org_id="demo", person_id="p-ln", name="Lise Nord", roles=["leader", "hr"]
    )
    who = verify_token("k" * 32, token)
    assert (who.org_id, who.person_id, who.name) == ("demo", "p-ln", "Lise Nord")
    assert who.roles == frozenset({"leader", "hr"})


def test_expired_forged_and_unknown_roles_are_refused() -> None:
    expired = issue_token(
        "k" * 32, org_id="o", person_id="p", name="P", roles=[], ttl=timedelta(seconds=-1)
    )
    with pytest.raises(TokenError, match="utløpt"):
        verify_token("k" * 32, expired)
    with pytest.raises(TokenError, match="ugyldig: signaturen stemmer ikke"):
        verify_token(
            "other" * 8, issue_token("k" * 32, org_id="o", person_id="p", name="P", roles=[])
        )
    with pytest.raises(ValueError, match="unknown roles"):
        issue_token("k" * 32, org_id="o", person_id="p", name="P", roles=["superuser"])


def test_key_file_is_created_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = signing_key(settings)
    assert signing_key(settings) == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert signing_key(Settings(data_dir=tmp_path, secret_key="from-env")) == "from-env"


def test_remembered_tokens_still_expire_and_forgeries_never_pass() -> None:
    from shared.auth import TokenVerifier

    verify = TokenVerifier("k" * 32, size=2)
    good = issue_token("k" * 32, org_id="o", person_id="p", name="P", roles=["leader"])
    assert verify(good).person_id == "p"
    assert verify(good).person_id == "p"  # from memory
    short = issue_token("k" * 32, org_id="o", person_id="p", name="P", roles=[],
                        ttl=timedelta(seconds=-1))  # fmt: skip
    with pytest.raises(TokenError):
        verify(short)
    forged = issue_token("x" * 32, org_id="o", person_id="p", name="P", roles=[])
    with pytest.raises(TokenError):
        verify(forged)
