"""[pscredential]/[securestring] parameters: filled from a secret, never typed (SPEC §3.10)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opsroom.catalog.scan import load_catalog
from opsroom.catalog.sidecar import read_sidecar
from opsroom.model.catalog import Catalog
from opsroom.model.commands import CredentialKind, CredentialParam
from opsroom.policy.masking import Masker

FUNCTIONS = Path(__file__).parents[2] / "fixtures" / "powershell" / "functions"
PSCRED, SECURE = CredentialKind.PSCREDENTIAL, CredentialKind.SECURESTRING


def catalog_with(tmp_path: Path, script: str, sidecar: str | None = None) -> Catalog:
    shutil.copy(FUNCTIONS / script, tmp_path / script)
    if sidecar is not None:
        (tmp_path / f"{script}.opsroom.toml").write_text(sidecar, encoding="utf-8")
    return load_catalog(tmp_path, commit="")


def test_a_mandatory_credential_without_a_secret_is_an_error_saying_how_to_map_it(
    tmp_path: Path,
) -> None:
    catalog = catalog_with(tmp_path, "Set-ServiceAccount.ps1")
    assert catalog.commands == ()
    assert [str(i) for i in catalog.issues] == [
        "Set-ServiceAccount.ps1:16: mandatory [pscredential] parameter $Credential cannot be "
        "typed in chat: map it to a secret in Set-ServiceAccount.ps1.opsroom.toml:  "
        '[params.Credential]  secret = "SECRET_NAME"',
        "Set-ServiceAccount.ps1:19: mandatory [securestring] parameter $RecoveryPassword cannot "
        "be typed in chat: map it to a secret in Set-ServiceAccount.ps1.opsroom.toml:  "
        '[params.RecoveryPassword]  secret = "SECRET_NAME"',
    ]


def test_mapped_credentials_reach_the_spec_and_its_secrets_not_its_parameters(
    tmp_path: Path,
) -> None:
    sidecar = (
        'secrets = ["AUDIT_TOKEN"]\n'
        '[params.Credential]\nsecret = "SVC_ACCOUNT"\n'
        '[params.RecoveryPassword]\nsecret = "RECOVERY_PW"\n'
    )
    catalog = catalog_with(tmp_path, "Set-ServiceAccount.ps1", sidecar)
    assert catalog.issues == ()
    (spec,) = catalog.commands
    assert [p.name for p in spec.params] == ["ServiceName"]
    assert spec.credentials == (
        CredentialParam("Credential", PSCRED, True, "SVC_ACCOUNT", 16),
        CredentialParam("RecoveryPassword", SECURE, True, "RECOVERY_PW", 19),
    )
    assert spec.secrets == ("AUDIT_TOKEN", "SVC_ACCOUNT", "RECOVERY_PW")


def test_an_optional_credential_without_a_secret_is_left_out(tmp_path: Path) -> None:
    catalog = catalog_with(tmp_path, "Remove-StaleProfile.ps1")
    (spec,) = catalog.commands
    assert (spec.credentials, spec.secrets) == ((), ())
    assert "Credential" not in [p.name for p in spec.params]


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        (
            '[params.ComputerName]\nsecret = "X"\n',
            "parameter 'ComputerName': secret maps a [pscredential] or [securestring] "
            "parameter, and the script has none by that name",
        ),
        (
            '[params.Credential]\nhelp = "Admin account"\n',
            "parameter 'Credential' is a [pscredential]: map it to a secret "
            '(`secret = "NAME"`), nothing else',
        ),
        (
            '[params.Credential]\nsecret = "X"\nrequired = true\n',
            "parameter 'Credential': a parameter mapped to a secret takes no other key",
        ),
        (
            '[params.Credential]\nsecret = "not a name"\n',
            "parameter 'Credential': secret must name a secret, like \"AD_SVC\"",
        ),
    ],
)
def test_bad_secret_mappings_are_sidecar_errors(tmp_path: Path, sidecar: str, message: str) -> None:
    catalog = catalog_with(tmp_path, "Remove-StaleProfile.ps1", sidecar)
    assert catalog.commands == ()
    assert [(i.path, i.message) for i in catalog.issues] == [
        ("Remove-StaleProfile.ps1.opsroom.toml", message)
    ]


def test_the_sidecar_reader_keeps_the_secret_name() -> None:
    sidecar = read_sidecar('[params.Credential]\nsecret = "AD_SVC"\n')
    assert sidecar.problems == ()
    assert [(o.name, dict(o.fields)) for o in sidecar.params] == [
        ("Credential", {"secret": "AD_SVC"})
    ]


def test_the_password_of_a_credential_secret_is_masked_on_its_own() -> None:
    # The script gets a PSCredential: what it may print is the password, not `user:password`.
    masker = Masker(
        {
            "AD_SVC": "CORP\\svc-ad:Winter-2026!",
            "SQL_SVC": '{"username": "sa", "password": "Spring-2027?"}',
        }
    )
    out = masker.mask("connecting with Winter-2026! then Spring-2027? as CORP\\svc-ad")
    assert "Winter-2026!" not in out
    assert "Spring-2027?" not in out
    assert "CORP\\svc-ad" in out  # the user name is no secret on its own
