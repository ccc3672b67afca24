"""Finding commands by the words people type: longest match, aliases, did-you-mean, search."""

from __future__ import annotations

import pytest

from opsroom.errors import UnknownCommand
from opsroom.model.commands import CommandSpec, Language
from opsroom.router.registry import Registry


def spec(
    name: str,
    summary: str = "",
    *,
    description: str = "",
    aliases: tuple[str, ...] = (),
    hidden: bool = False,
    language: Language = Language.POWERSHELL,
) -> CommandSpec:
    """A command spec with only what the registry reads."""
    return CommandSpec(
        name=name,
        path=name.replace(" ", "/") + ".ps1",
        language=language,
        summary=summary,
        description=description,
        aliases=aliases,
        hidden=hidden,
    )


REGISTRY = Registry(
    [
        spec("network status", "Show the network status of a site"),
        spec("network status site", "Status of one site in detail"),
        spec("network get-vlan", "List VLANs on a switch"),
        spec("storage migrate-volume", "Move a volume", aliases=("migrate", "vol move")),
        spec("storage list", "List arrays", description="Shows every NetApp array"),
        spec("ad get-user", "Find a user in Active Directory"),
        spec("ad unlock-user", "Unlock a locked account"),
        spec("secret rotate", "Rotate the root key", hidden=True),
        spec("help", "Show help", language=Language.BUILTIN),
        spec("jobs", "List jobs", language=Language.BUILTIN),
    ]
)

LOOKUP_CASES = [
    ("single-word", ["help"], "help", []),
    ("single-word-args", ["jobs", "mine"], "jobs", ["mine"]),
    ("two-words", ["network", "status"], "network status", []),
    (
        "two-words-args",
        ["network", "status", "nyc", "--env", "prod"],
        "network status",
        ["nyc", "--env", "prod"],
    ),
    ("longest-wins", ["network", "status", "site", "nyc"], "network status site", ["nyc"]),
    ("case-insensitive", ["NETWORK", "Status"], "network status", []),
    ("alias-one-word", ["migrate", "vol1"], "storage migrate-volume", ["vol1"]),
    ("alias-two-words", ["vol", "move", "vol1"], "storage migrate-volume", ["vol1"]),
    ("hidden-found-by-lookup", ["secret", "rotate"], "secret rotate", []),
]


@pytest.mark.parametrize(
    ("tokens", "name", "rest"), [c[1:] for c in LOOKUP_CASES], ids=[c[0] for c in LOOKUP_CASES]
)
def test_lookup(tokens: list[str], name: str, rest: list[str]) -> None:
    found, remaining = REGISTRY.lookup(tokens)
    assert found.name == name
    assert remaining == rest


UNKNOWN_CASES = [
    ("typo-first-word", ["netwrok", "status"], "netwrok", ("network status",)),
    ("typo-second-word", ["network", "stauts", "x"], "network stauts", ("network status",)),
    (
        "typo-group-only",
        ["netwrok"],
        "netwrok",
        ("network get-vlan", "network status", "network status site"),
    ),
    ("typo-alias", ["migrat"], "migrat", ("storage migrate-volume",)),
    ("group-only", ["ad"], "ad", ("ad get-user", "ad unlock-user")),
    ("group-only-case", ["AD"], "AD", ("ad get-user", "ad unlock-user")),
    ("nothing-close", ["zzzzqqq"], "zzzzqqq", ()),
    ("hidden-never-suggested", ["secret", "rotat"], "secret rotat", ()),
]


@pytest.mark.parametrize(
    ("tokens", "words", "suggestions"),
    [c[1:] for c in UNKNOWN_CASES],
    ids=[c[0] for c in UNKNOWN_CASES],
)
def test_unknown_command_suggests(
    tokens: list[str], words: str, suggestions: tuple[str, ...]
) -> None:
    with pytest.raises(UnknownCommand) as info:
        REGISTRY.lookup(tokens)
    assert info.value.words == words
    assert info.value.suggestions[: len(suggestions)] == suggestions
    assert len(info.value.suggestions) <= 3


def test_unknown_command_message_shows_did_you_mean() -> None:
    with pytest.raises(
        UnknownCommand, match=r"unknown command: netwrok — did you mean `network status`"
    ):
        REGISTRY.lookup(["netwrok", "status"])


def test_empty_tokens_are_unknown() -> None:
    with pytest.raises(UnknownCommand):
        REGISTRY.lookup([])


SEARCH_CASES = [
    ("by-name", ["user"], ["ad get-user", "ad unlock-user"]),
    ("name-before-summary", ["status"], ["network status", "network status site"]),
    ("all-words", ["list", "vlan"], ["network get-vlan"]),
    ("description", ["netapp"], ["storage list"]),
    ("case-insensitive", ["VOLUME"], ["storage migrate-volume"]),
    ("alias", ["migrate"], ["storage migrate-volume"]),
    ("name-match-first", ["site"], ["network status site", "network status"]),
    ("hidden-excluded", ["rotate"], []),
    ("no-match", ["kubernetes"], []),
]


@pytest.mark.parametrize(
    ("words", "names"), [c[1:] for c in SEARCH_CASES], ids=[c[0] for c in SEARCH_CASES]
)
def test_search(words: list[str], names: list[str]) -> None:
    assert [s.name for s in REGISTRY.search(words)] == names


def test_search_limit() -> None:
    assert len(REGISTRY.search([], limit=3)) == 3


def test_get_by_name_or_alias() -> None:
    found = REGISTRY.get("Network  Status")
    assert found is not None
    assert found.name == "network status"
    alias = REGISTRY.get("migrate")
    assert alias is not None
    assert alias.name == "storage migrate-volume"
    assert REGISTRY.get("nope") is None


def test_iter_and_len_count_commands_not_aliases() -> None:
    assert len(REGISTRY) == 10
    assert [s.name for s in REGISTRY][:2] == ["network status", "network status site"]


def test_scripts_counts_the_catalog_s_commands_hidden_ones_too_not_built_ins() -> None:
    assert REGISTRY.scripts == 8
    assert Registry([spec("help", language=Language.BUILTIN)]).scripts == 0


@pytest.mark.parametrize(
    "specs",
    [
        [spec("a b"), spec("A  B")],
        [spec("a b"), spec("c", aliases=("a b",))],
        [spec("x", aliases=("y",)), spec("z", aliases=("Y",))],
    ],
    ids=["same-name", "alias-is-name", "same-alias"],
)
def test_duplicates_are_rejected(specs: list[CommandSpec]) -> None:
    with pytest.raises(ValueError, match=r"duplicate|claimed by both"):
        Registry(specs)


def test_many_commands_still_suggest_the_right_one() -> None:
    specs = [spec(f"group{g} cmd-{c}") for g in range(100) for c in range(100)]
    registry = Registry([*specs, spec("storage migrate-volume")])
    found, rest = registry.lookup(["group42", "cmd-7", "x"])
    assert (found.name, rest) == ("group42 cmd-7", ["x"])
    with pytest.raises(UnknownCommand) as info:
        registry.lookup(["storage", "migrate-volme"])
    assert info.value.suggestions[0] == "storage migrate-volume"
