"""The directory file an admin uploads: YAML read with the line of each element, so that every
problem notify finds (given by `loc`, the path of keys and list positions) is said with the line
of the file where it is. Pure."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024

# PyYAML's own words for the errors an admin makes by hand, in Norwegian; others get a general
# hint. Matched on the start of the problem.
YAML_PROBLEMS = (
    ("could not find expected ':'", "et kolon (:) mangler etter et feltnavn"),
    ("mapping values are not allowed", 'et kolon står der det ikke kan stå; sett teksten i «"»'),
    ("found character '\\t'", "tabulator i innrykket; bruk mellomrom"),
    ("found undefined alias", "en ukjent henvisning (*navn)"),
    ("did not find expected key", "innrykket stemmer ikke med linjene over"),
    ("did not find expected '-'", "innrykket stemmer ikke med listen over"),
    ("found unexpected end of stream", "filen slutter midt i en tekst i anførselstegn"),
    ("found unknown escape character", "ukjent tegn etter \\ i en tekst i anførselstegn"),
)


class NotADirectoryFile(ValueError):
    """The file cannot be read as YAML; the message is Norwegian, with the line."""


@dataclass(frozen=True)
class DirectoryFile:
    body: Any
    """What the file says, as JSON can carry it (dates as ISO text)."""
    root: yaml.Node | None

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        return line_of(self.root, loc) if self.root is not None else None


def read(text: str) -> DirectoryFile:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        body = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context or "")
        said = next((no for en, no in YAML_PROBLEMS if problem.startswith(en)), None)
        what = said or "sjekk innrykk, kolon og anførselstegn på linjen og linjen over"
        where = f"Linje {mark.line + 1}, kolonne {mark.column + 1}: " if mark else ""
        raise NotADirectoryFile(f"{where}filen er ikke gyldig YAML: {what}.") from exc
    except yaml.YAMLError as exc:  # e.g. a control character (ReaderError)
        raise NotADirectoryFile("Filen er ikke gyldig YAML: den har et ugyldig tegn.") from exc
    finally:
        loader.dispose()
    return DirectoryFile(plain(body), root)


def plain(value: Any) -> Any:
    """YAML's values as JSON has them: dates and times as their ISO text, every key a text."""
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bytes):  # !!binary
        return value.decode("utf-8", "replace")
    return value


def line_of(root: yaml.Node, loc: Sequence[str | int]) -> int | None:
    """The line (1 the first) of the element at `loc`, or of the nearest one around it that
    the file has (a missing field: the entry it is missing from). None for the whole file."""
    if not loc:
        return None
    node, line = root, root.start_mark.line
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(
                (
                    (key, value)
                    for key, value in node.value
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part)
                ),
                None,
            )
            if found is None:
                break
            # A field's line is its name's: a nested entry starts on the line below it.
            line, node = found[0].start_mark.line, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


def located(issues: Sequence[Mapping[str, Any]], file: DirectoryFile | None) -> list[str]:
    """Notify's problems ({loc, message}) as the admin reads them: "Linje 14: personen …"."""
    said = []
    for issue in issues:
        loc = [p for p in issue.get("loc", []) if isinstance(p, (str, int))]
        line = file.line_of(loc) if file is not None else None
        said.append(
            f"Linje {line}: {issue.get('message', '')}" if line else str(issue.get("message", ""))
        )
    return said


def seal(key: bytes, org_id: str, person_id: str, base: int, text: str) -> str:
    """What binds a previewed file to the admin who saw its diff and to the version it was made
    against: the confirmation applies that file, as that admin, or nothing."""
    digest = hashlib.sha256(normal(text).encode()).hexdigest()
    message = f"directory-preview\n{org_id}\n{person_id}\n{base}\n{digest}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def normal(text: str) -> str:
    # A browser sends a form's line breaks as CRLF; YAML reads either the same.
    return text.replace("\r\n", "\n").replace("\r", "\n")
