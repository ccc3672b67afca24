"""Script files as Windows and Unix editors save them: BOMs, CRLF, UTF-16, Windows-1252 (§3.10).

The fixtures in tests/fixtures/encodings are byte-exact files (see the .gitattributes
there), one per encoding and script kind, all saying the same non-ASCII words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.catalog.encoding import decode_script, read_script_text
from opsroom.catalog.scan import load_catalog

ENCODINGS = Path(__file__).parents[2] / "fixtures" / "encodings"


def test_every_fixture_is_the_encoding_it_claims() -> None:
    # guards the fixtures themselves: a checkout that rewrote them would test nothing
    heads = {p.name: p.read_bytes()[:3] for p in ENCODINGS.rglob("*.*") if p.is_file()}
    assert heads["Get-CafeUtf16le.ps1"][:2] == b"\xff\xfe"
    assert heads["Get-CafeUtf16be.ps1"][:2] == b"\xfe\xff"
    assert heads["Get-CafeUtf8Bom.ps1"] == b"\xef\xbb\xbf"
    assert heads["utf8_bom_crlf.py"] == b"\xef\xbb\xbf"
    assert b"\r\n" in (ENCODINGS / "shell" / "cp1252_crlf.sh").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        (ENCODINGS / "shell" / "cp1252_crlf.sh").read_bytes().decode("utf-8")
    with pytest.raises(UnicodeDecodeError):
        (ENCODINGS / "python" / "koi8r_cookie.py").read_bytes().decode("utf-8")


def test_every_encoding_loads_the_same_command() -> None:
    cat = load_catalog(ENCODINGS)
    assert cat.issues == ()
    by_name = {c.name: c for c in cat.commands}
    for kind in ("utf16le", "utf16be", "cp1252", "utf8bom"):
        spec = by_name[f"powershell get-cafe{kind}"]
        assert spec.summary == "Liste les cafés ouverts à Zürich – 5 €", kind
        (taille,) = spec.params
        assert taille.choices == ("grande", "très petite"), kind
        assert taille.help == "Taille de la tasse, grande ou très petite", kind
    for name in ("python utf8-bom-crlf", "python cp1252"):
        spec = by_name[name]
        assert spec.summary == "Répare le café – naïve € edition.", name
        assert spec.params[0].help == "la tasse à réparer", name
    assert by_name["python koi8r-cookie"].summary == "Привет, мир."
    for name in ("shell cp1252-crlf", "shell utf16be", "shell utf8"):
        spec = by_name[name]
        assert spec.summary == "Café crème – 2 €", name
        assert spec.params[0].name == "größe", name
        assert spec.params[0].help == "Taille de la tasse", name


def test_line_numbers_survive_crlf_and_a_bom(tmp_path: Path) -> None:
    # the problem is reported on the line a person sees in the editor
    text = "#!/bin/bash\r\n# @describe Café\r\n\r\n# @option --a!=1 A\r\n"
    (tmp_path / "a.sh").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (tmp_path / "b.sh").write_bytes(text.encode("cp1252"))
    cat = load_catalog(tmp_path)
    assert [str(i) for i in cat.issues] == [
        "a.sh:4: mandatory parameter 'a' has a default",
        "b.sh:4: mandatory parameter 'a' has a default",
    ]


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"a\r\nb\rc\n", "a\nb\nc\n"),
        (b"\xef\xbb\xbfx", "x"),
        (b"\xff\xfe\x00\x00x\x00\x00\x00", "x"),  # UTF-32 LE, not UTF-16 LE + NULs
        (b"caf\xe9 \x80 \x96", "café € –"),
        (b"\x81\x8d\x8f\x90\x9d", "\x81\x8d\x8f\x90\x9d"),  # undefined in 1252: kept as C1
        (b"\xef\xbb\xbf\xff", "ï»¿ÿ"),  # a BOM before bytes that are not UTF-8: 1252
    ],
)
def test_decode_script(data: bytes, text: str) -> None:
    assert decode_script(data) == text


def test_a_coding_line_counts_only_for_python() -> None:
    data = "# -*- coding: koi8-r -*-\nПривет\n".encode("koi8-r")
    assert decode_script(data, python=True).endswith("Привет\n")
    assert not decode_script(data).endswith("Привет\n")
    # an unknown codec name is ignored, not an error
    assert decode_script(b"# coding: nonsense-42\nx\n", python=True) == "# coding: nonsense-42\nx\n"


def test_read_script_text_uses_the_suffix(tmp_path: Path) -> None:
    data = "# coding: koi8-r\nПривет\n".encode("koi8-r")
    (tmp_path / "a.py").write_bytes(data)
    (tmp_path / "a.sh").write_bytes(data)
    assert read_script_text(tmp_path / "a.py").endswith("Привет\n")
    assert not read_script_text(tmp_path / "a.sh").endswith("Привет\n")
