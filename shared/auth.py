"""Bearer tokens: issue and verify. Claims: sub, org, roles, name, exp, iss, aud.

HS256 with one instance key: every service of one installation verifies with the same key, which
comes from KRISELOGG_SECRET_KEY or, in embedded mode, a key file created in the data dir.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import jwt

from shared.clock import SYSTEM_CLOCK, Clock
from shared.settings import Settings

ISSUER = "kriselogg"
AUDIENCE = "kriselogg"
ALGORITHM = "HS256"
ROLES = frozenset({"reporter", "leader", "safety_rep", "hr", "auditor", "admin", "witness"})


class TokenError(Exception):
    """The token is missing, expired, forged or meant for someone else."""


@dataclass(frozen=True)
class Principal:
    person_id: str
    org_id: str
    roles: frozenset[str]
    name: str
    expires_at: int = 0

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


def signing_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    path: Path = settings.data_dir / "secret.key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two services starting at once must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"empty key file {path}")
    return key


def issue_token(
    key: str,
    *,
    org_id: str,
    person_id: str,
    name: str,
    roles: list[str] | frozenset[str],
    ttl: timedelta = timedelta(hours=12),
    clock: Clock = SYSTEM_CLOCK,
) -> str:
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(sorted(unknown))}")
    now = clock.now()
    claims = {
        "sub": person_id,
        "org": org_id,
        "roles": sorted(roles),
        "name": name,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def issue_witness_token(
    key: str, *, org_id: str, days: int = 366, clock: Clock = SYSTEM_CLOCK
) -> str:
    """A read-only token for the organisation's witnesses: checkpoints, keys and proofs only."""
    return issue_token(
        key, org_id=org_id, person_id="witness", name="Vitne", roles=["witness"],
        ttl=timedelta(days=days), clock=clock,
    )  # fmt: skip


def verify_token(key: str, token: str, clock: Clock = SYSTEM_CLOCK) -> Principal:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            # Expiry is judged by our clock below, not by PyJWT's own reading of the system's.
            options={
                "require": ["exp", "sub", "org", "iss", "aud"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"Tokenet er ugyldig: {_why(exc)}.") from exc
    if not isinstance(claims["exp"], int):
        raise TokenError("Tokenet er ugyldig: exp må være et helt antall sekunder.")
    if claims["exp"] <= clock.time():
        raise TokenError(EXPIRED)
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise TokenError("Tokenet er ugyldig: roles må være en liste med tekster.")
    return Principal(
        person_id=str(claims["sub"]),
        org_id=str(claims["org"]),
        roles=frozenset(roles) & ROLES,
        name=str(claims.get("name") or claims["sub"]),
        expires_at=int(claims["exp"]),
    )


EXPIRED = "Tokenet er utløpt; logg inn på nytt."


def _why(exc: jwt.InvalidTokenError) -> str:
    """PyJWT's reason, in Norwegian (the caller reads it in a 401's detail)."""
    if isinstance(exc, jwt.InvalidSignatureError):
        return "signaturen stemmer ikke"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "det er utstedt for en annen mottaker (aud)"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "det er utstedt av en annen utsteder (iss)"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"det mangler {exc.claim}"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "det er signert med en algoritme som ikke godtas"
    return "det kan ikke leses"


class TokenVerifier:
    """verify_token with a bounded memory of tokens already checked.

    A leader's phone sends the same token with every tap; checking its signature once, and
    only its expiry after that, takes a measurable share off every request.
    """

    def __init__(self, key: str, size: int = 4096, clock: Clock = SYSTEM_CLOCK) -> None:
        self.key = key
        self.clock = clock
        self.size = size
        self._known: dict[str, Principal] = {}

    def __call__(self, token: str) -> Principal:
        principal = self._known.get(token)
        if principal is None:
            principal = verify_token(self.key, token, self.clock)
            if len(self._known) >= self.size:
                self._known.pop(next(iter(self._known)))
            self._known[token] = principal
        if principal.expires_at <= self.clock.time():
            self._known.pop(token, None)
            raise TokenError(EXPIRED)
        return principal
