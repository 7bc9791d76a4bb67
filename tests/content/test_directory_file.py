"""The uploaded directory file: each problem notify finds is said with the line of the file."""

from __future__ import annotations

from typing import Any

import pytest

from services.content.domain.directory_file import NotADirectoryFile, located, read, seal

FILE = """\
org:
  id: demo
  name: Demo kommune
units:
  - id: u-top
    name: Toppen
  - {id: u-nord, name: Nord, parent: u-top}
people:
  - id: p-1
    name: En
    unit: u-nord
    absences:
      - from: 2026-07-01
        to: 2026-06-01
  - id: p-2
    channels: [email, fax]
"""


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("people", 0, "unit"), 11),
        (("people", 0, "absences", 0, "from"), 13),  # the alias, as pydantic names it
        (("people", 0, "absences", 0), 13),
        (("people", 1, "name"), 15),  # missing: the entry it is missing from
        (("people", 1, "channels", 1), 16),
        (("units", 1, "parent"), 7),  # flow style: the same line
        (("units",), 4),
        (("org", "nope", 3), 1),  # the nearest the file has
        ((), None),  # the whole file
    ],
)
def test_a_location_is_the_line_of_its_element(loc: tuple[str | int, ...], line: int) -> None:
    assert read(FILE).line_of(loc) == line


def test_problems_read_with_their_line_and_dates_go_as_text() -> None:
    file = read(FILE)
    assert file.body["people"][0]["absences"][0] == {"from": "2026-07-01", "to": "2026-06-01"}
    issues: list[dict[str, Any]] = [
        {"loc": ["people", 1, "name"], "message": "«name» mangler"},
        {"loc": [], "message": "katalogen må være en samling felter"},
    ]
    assert located(issues, file) == [
        "Linje 15: «name» mangler",
        "katalogen må være en samling felter",
    ]


def test_a_file_that_is_not_yaml_is_named_with_its_line() -> None:
    with pytest.raises(NotADirectoryFile) as bad:
        read("org:\n  id: demo\nunits\n  - id: x\n")
    assert str(bad.value).startswith("Linje 4, kolonne 7: filen er ikke gyldig YAML")
    with pytest.raises(NotADirectoryFile, match="tabulator"):
        read("org:\n\tid: demo\n")


def test_the_seal_binds_the_file_the_version_and_the_admin() -> None:
    key = b"k" * 32
    sealed = seal(key, "demo", "p-admin", 3, FILE)
    # A form sends its line breaks as CRLF: the same file.
    assert seal(key, "demo", "p-admin", 3, FILE.replace("\n", "\r\n")) == sealed
    assert seal(key, "demo", "p-admin", 4, FILE) != sealed
    assert seal(key, "demo", "p-other", 3, FILE) != sealed
    assert seal(key, "demo", "p-admin", 3, FILE.replace("En", "To")) != sealed
    assert seal(b"x" * 32, "demo", "p-admin", 3, FILE) != sealed
