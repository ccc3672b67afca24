"""PowerShell files as Windows saves them read the same as clean UTF-8 (SPEC §3.10).

Windows PowerShell 5.1 writes UTF-16 LE with a BOM (`Out-File`, New-ModuleManifest), ISE and
Notepad add a UTF-8 BOM and CRLF, and older editors save Windows-1252 without any marker.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from opsroom.catalog.scan import load_catalog
from opsroom.model.commands import CommandSpec

FUNCTION = """#Requires -Modules ActiveDirectory
<#
.SYNOPSIS
    Réinitialise le mot de passe – vérifié par l'équipe.
.PARAMETER Identité
    Le compte (sAMAccountName) à débloquer.
#>
function Reset-Compte {
    param(
        [Parameter(Mandatory)]
        [ValidateSet('Siège', 'Agence')]
        [string]$Site,
        [string]$Identité = 'invité'
    )
    "ok"
}
"""


def encoded(text: str, how: str) -> bytes:
    crlf = text.replace("\n", "\r\n")
    return {
        "utf-8": text.encode(),
        "utf-8 bom crlf": codecs.BOM_UTF8 + crlf.encode(),
        "utf-16 le bom": codecs.BOM_UTF16_LE + crlf.encode("utf-16-le"),
        "utf-16 be bom": codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
        "windows-1252 crlf": crlf.encode("cp1252"),
    }[how]


def only(root: Path) -> CommandSpec:
    catalog = load_catalog(root, commit="")
    assert catalog.issues == ()
    (spec,) = catalog.commands
    return spec


def essentials(spec: CommandSpec) -> object:
    return (
        spec.name,
        spec.entry,
        spec.summary,
        spec.params,
        spec.ps_requires,
    )


HOWS = ["utf-8 bom crlf", "utf-16 le bom", "utf-16 be bom", "windows-1252 crlf"]


@pytest.mark.parametrize("how", HOWS)
def test_a_function_file_reads_the_same_in_every_encoding(tmp_path: Path, how: str) -> None:
    clean, saved = tmp_path / "clean", tmp_path / "saved"
    clean.mkdir()
    saved.mkdir()
    (clean / "Reset-Compte.ps1").write_bytes(encoded(FUNCTION, "utf-8"))
    (saved / "Reset-Compte.ps1").write_bytes(encoded(FUNCTION, how))
    expected = only(clean)
    assert expected.summary == "Réinitialise le mot de passe – vérifié par l'équipe."
    assert expected.params[0].choices == ("Siège", "Agence")
    assert (expected.params[1].name, expected.params[1].default) == ("Identité", "invité")
    assert essentials(only(saved)) == essentials(expected)


@pytest.mark.parametrize("how", HOWS)
def test_a_module_and_its_manifest_read_the_same_in_every_encoding(
    tmp_path: Path, how: str
) -> None:
    module = tmp_path / "Outils"
    module.mkdir()
    psm1 = FUNCTION + "Export-ModuleMember -Function Reset-Compte\n"
    manifest = "@{\n    RootModule = 'Outils.psm1'\n    FunctionsToExport = @('Reset-Compte')\n}\n"
    (module / "Outils.psm1").write_bytes(encoded(psm1, how))
    (module / "Outils.psd1").write_bytes(encoded(manifest, how))
    spec = only(tmp_path)
    assert (spec.name, spec.path, spec.entry) == (
        "outils reset-compte",
        "Outils/Outils.psd1",
        "Reset-Compte",
    )
    assert spec.summary == "Réinitialise le mot de passe – vérifié par l'équipe."
    assert spec.params[0].choices == ("Siège", "Agence")
