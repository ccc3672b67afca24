"""IRC lines → opsroom's model, on recorded and documented IRCv3 lines (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.adapters.irc.translate import (
    AccountBook,
    Handshake,
    build_line,
    parse_line,
    to_event,
)
from opsroom.model.messages import Inbound

PAYLOADS = Path(__file__).parent.parent / "fixtures" / "payloads" / "irc"


def recorded(name: str) -> list[str]:
    lines = (PAYLOADS / name).read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def line(text: str) -> object:
    msg = parse_line(text)
    assert msg is not None
    return msg


def event(text: str, account: str | None, me: str = "ops") -> Inbound | None:
    msg = parse_line(text)
    assert msg is not None
    return to_event(msg, me=me, account=account)


def test_account_tag_gives_the_services_account_as_principal() -> None:
    msg = parse_line(recorded("privmsg_account_tag.txt")[0])
    assert msg is not None
    assert msg.tags["account"] == "alice"
    got = to_event(msg, me="ops", account=msg.tags.get("account"))
    assert got == Inbound(
        text="!store status 42",
        principal="irc:alice",
        room="irc:#ops",
        direct=False,
        display_name="alice",
        message_id="63E1033A051D4B41B1AB1FA3CF4B243E",
    )


def test_same_account_under_another_nick_is_the_same_principal() -> None:
    first = event("@account=alice :alice!a@h PRIVMSG #ops :!whoami", "alice")
    renamed = event("@account=alice :AliceOnPhone!a@h PRIVMSG #ops :!whoami", "alice")
    assert isinstance(first, Inbound)
    assert isinstance(renamed, Inbound)
    assert first.principal == renamed.principal == "irc:alice"
    assert renamed.display_name == "AliceOnPhone"


def test_a_nick_without_an_account_is_not_its_namesake() -> None:
    got = event(":alice!evil@h PRIVMSG #ops :!help", None)
    assert isinstance(got, Inbound)
    assert got.principal == "irc:~guest"


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        ("!help", "!help"),
        ("hello everyone", "hello everyone"),
        ("!store status 42", "!store status 42"),
        ("ops, store status 42", "!store status 42"),  # a mention of the bot
        ("!st\x02ore status 42", "!store status 42"),  # formatting codes do not hide a command
    ],
)
def test_a_guest_reaches_the_engine_as_a_guest_and_policy_decides(text: str, seen: str) -> None:
    # The adapter says who is asking (nobody it can vouch for) and what they typed; what a
    # guest may do is decided by policy in the engine (tests/adapters/test_irc_guests.py).
    got = event(f":mallory!m@h PRIVMSG #ops :{text}", None)
    assert got == Inbound(
        text=seen, principal="irc:~guest", room="irc:#ops", direct=False, display_name="mallory"
    )


def test_recorded_guest_command_reaches_the_engine_as_the_guest() -> None:
    got = event(recorded("privmsg_no_account.txt")[0], None)
    assert isinstance(got, Inbound)
    assert (got.principal, got.text) == ("irc:~guest", "!store status 42")


@pytest.mark.parametrize(
    ("text", "account", "room", "principal"),
    [
        ("store status 42", "alice", "irc:@alice", "irc:alice"),
        ("help", None, "irc:@~mallory", "irc:~guest"),
        ("store status 42", None, "irc:@~mallory", "irc:~guest"),
    ],
)
def test_direct_messages(text: str, account: str | None, room: str, principal: str) -> None:
    tag = f"@account={account} " if account else ""
    got = event(f"{tag}:mallory!m@h PRIVMSG ops :{text}", account)
    assert isinstance(got, Inbound)
    assert (got.room, got.direct, got.text, got.principal) == (room, True, text, principal)


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        ("ops_: store status 42", "!store status 42"),
        ("OPS_, store status 42", "!store status 42"),  # nicks compare case-folded
        ("@ops_ store status 42", "!store status 42"),
        ("ops_: !store status 42", "!store status 42"),
        ("ops_ store status", "ops_ store status"),  # a bare nick is just a word
        ("ops_:", "ops_:"),  # nothing asked
        ("ops_x: hi", "ops_x: hi"),  # another nick
    ],
)
def test_a_mention_of_the_current_nick_becomes_a_command(text: str, seen: str) -> None:
    got = event(f"@account=alice :alice!a@h PRIVMSG #ops :{text}", "alice", "ops_")
    assert isinstance(got, Inbound)
    assert got.text == seen


@pytest.mark.parametrize(
    "text",
    [
        ":ops!o@h PRIVMSG #ops :!help",  # the bot itself
        "@bot :otherbot!b@h PRIVMSG #ops :!help",  # another bot (IRCv3 bot tag)
        ":alice!a@h NOTICE #ops :!help",  # notices never get answers
        ":alice!a@h PRIVMSG #ops :\x01ACTION waves\x01",  # CTCP
    ],
)
def test_ignored(text: str) -> None:
    assert event(text, "alice") is None


def test_parse_unescapes_tags_and_keeps_the_trailing_parameter() -> None:
    msg = parse_line(r"@a=one\stwo\:three;b :n!u@h PRIVMSG #c :hi  there : x")
    assert msg is not None
    assert msg.tags == {"a": "one two;three", "b": ""}
    assert (msg.nick, msg.user, msg.host) == ("n", "u", "h")
    assert msg.params == ("#c", "hi  there : x")
    assert parse_line("") is None


def test_build_line_refuses_injection() -> None:
    assert build_line("PRIVMSG", "#ops", "hello there") == "PRIVMSG #ops :hello there"
    with pytest.raises(ValueError, match="CR, LF"):
        build_line("PRIVMSG", "#ops", "hi\r\nQUIT :pwned")


def test_sasl_plain_handshake_matches_the_recorded_session() -> None:
    script = recorded("sasl_session.txt")
    handshake = Handshake(account="ops", password="s3cret")
    sent = list(handshake.start())
    for row in script:
        if row.startswith("S: "):
            msg = parse_line(row[3:])
            assert msg is not None
            sent.extend(handshake.feed(msg))
    assert sent == [row[3:] for row in script if row.startswith("C: ")]
    assert handshake.sasl is True
    assert {"account-tag", "account-notify", "extended-join"} <= handshake.enabled


def test_sasl_refused_still_ends_negotiation() -> None:
    handshake = Handshake(account="ops", password="wrong")
    for row in ["CAP * LS :sasl", "CAP * ACK :sasl", "AUTHENTICATE +"]:
        handshake.feed(line(row))  # type: ignore[arg-type]
    assert handshake.feed(line(":s 904 ops :SASL authentication failed")) == ["CAP END"]  # type: ignore[arg-type]
    assert handshake.sasl is False


def test_without_a_password_sasl_is_not_requested() -> None:
    handshake = Handshake()
    got = handshake.feed(line(":s CAP * LS :sasl account-tag"))  # type: ignore[arg-type]
    assert got == ["CAP REQ account-tag"]


def test_ngircd_offers_no_account_capabilities() -> None:
    handshake = Handshake()
    replies = [handshake.feed(line(row)) for row in recorded("ngircd_registration.txt")]  # type: ignore[arg-type]
    assert replies[0] == ["CAP END"]
    assert handshake.done
    assert "account-tag" not in handshake.enabled


def test_account_book_follows_joins_logins_renames_and_whox() -> None:
    book = AccountBook()
    for row in recorded("account_tracking.txt")[:-1]:
        book.observe(line(row))  # type: ignore[arg-type]
    assert book.account("alice_away") == "alice", "a rename keeps the account"
    assert not book.known("alice")
    assert book.account("guest42") == "carol", "account-notify login"
    assert not book.known("carol"), "quit forgets"
    assert book.account("dave") == "dave"
    assert book.known("erin")
    assert book.account("erin") is None, "WHOX 0: no account"
    assert not book.known("frank"), "someone else's WHO query is not ours"
    book.observe(line(recorded("account_tracking.txt")[-1]))  # type: ignore[arg-type]
    assert book.known("alice_away")
    assert book.account("alice_away") is None, "logout"
