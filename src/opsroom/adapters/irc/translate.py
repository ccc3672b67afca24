"""IRC lines ⇄ opsroom's model: parsing, identity (services accounts), registration.

Pure: no sockets, no clocks. The transport feeds it every line the server sends.

Identity (SPEC §2): a nick is not an identity. A person's principal is `irc:<account>`, the
services account the server vouches for — from the IRCv3 `account` message tag when the
server offers `account-tag`, else from what `account-notify` / `extended-join` told us,
else from a WHOX lookup (`WHO <nick> %tna`). Someone with no account (or on a network
without services) is the shared principal `irc:~guest` (`~` cannot occur in an account
name, so it never collides). What a guest may do is policy's to decide, not the
adapter's: `policy.rbac` lets a principal beginning with `~` ask for `help` only.

Rooms: a channel is `irc:#ops` (case-folded); a direct message is `irc:@<account>`, or
`irc:@~<nick>` for someone without an account.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from opsroom.model.messages import Inbound

GUEST = "~guest"
WANTED_CAPS = ("account-notify", "account-tag", "extended-join", "message-tags", "sasl")
WHOX_QUERY_TYPE = "651"
CHANNEL_TYPES = "#&+!"

_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_FORMATTING = re.compile(
    r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|\x04(?:[0-9a-fA-F]{6})?|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
_SASL_CHUNK = 400


@dataclass(frozen=True, slots=True)
class IrcMessage:
    """One line from the server: tags, source, command (upper-case or numeric), params."""

    command: str
    params: tuple[str, ...] = ()
    nick: str = ""  # the source's nick, or the server's name
    user: str = ""
    host: str = ""
    tags: dict[str, str] = field(default_factory=dict)


def _unescape_tag(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_TAG_ESCAPES.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


def parse_line(line: str) -> IrcMessage | None:
    """Parse one IRC line (IRCv3 tags included); None for an empty or malformed line."""
    rest = line.rstrip("\r\n")
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw, _, rest = rest[1:].partition(" ")
        for item in raw.split(";"):
            if item:
                key, _, value = item.partition("=")
                tags[key] = _unescape_tag(value)
        rest = rest.lstrip(" ")
    nick = user = host = ""
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        nick, _, userhost = source.partition("!")
        user, _, host = userhost.partition("@")
        if not user and "@" in nick:
            nick, _, host = nick.partition("@")
        rest = rest.lstrip(" ")
    trailing: str | None = None
    if " :" in rest:
        rest, _, trailing = rest.partition(" :")
    elif rest.startswith(":"):
        rest, trailing = "", rest[1:]
    words = rest.split()
    if not words:
        return None
    params = [*words[1:], *([trailing] if trailing is not None else [])]
    return IrcMessage(words[0].upper(), tuple(params), nick, user, host, tags)


def build_line(command: str, *params: str) -> str:
    """One outgoing line; ValueError if a value could smuggle in another command."""
    for p in (command, *params):
        if any(c in p for c in "\r\n\0"):
            raise ValueError("IRC parameters cannot contain CR, LF or NUL")
    if not params:
        return command
    *middle, last = params
    for p in middle:
        if not p or " " in p or p.startswith(":"):
            raise ValueError(f"bad middle parameter {p!r}")
    tail = f":{last}" if (not last or " " in last or last.startswith(":")) else last
    return " ".join([command, *middle, tail])


def fold(name: str) -> str:
    """Case-fold a nick or channel the way IRC servers compare them (rfc1459)."""
    return name.lower().translate(str.maketrans("[]\\~", "{}|^"))


def is_channel(target: str, chantypes: str = CHANNEL_TYPES) -> bool:
    """Does `target` name a channel rather than a nick?"""
    return bool(target) and target[0] in chantypes


def strip_formatting(text: str) -> str:
    """Remove IRC bold/colour/reset codes, so `!st\\x02ore` reads `!store`."""
    return _FORMATTING.sub("", text)


class AccountBook:
    """Which nick is logged in to which services account, as the server has told us."""

    def __init__(self) -> None:
        self._by_nick: dict[str, str | None] = {}

    def known(self, nick: str) -> bool:
        """Has the server told us this nick's account (or that it has none)?"""
        return fold(nick) in self._by_nick

    def account(self, nick: str) -> str | None:
        """The nick's account, None when it has none or we do not know."""
        return self._by_nick.get(fold(nick))

    def learn(self, nick: str, account: str | None) -> None:
        """Record what the server said about a nick's account."""
        self._by_nick[fold(nick)] = account

    def forget(self, nick: str) -> None:
        """Drop what we knew (the nick left our sight)."""
        self._by_nick.pop(fold(nick), None)

    def observe(self, msg: IrcMessage) -> None:
        """Update from account-notify, extended-join, NICK, QUIT and WHOX replies."""
        match msg.command:
            case "ACCOUNT" if msg.params:
                self.learn(msg.nick, _account(msg.params[0]))
            case "JOIN" if len(msg.params) >= 3:  # extended-join: channel, account, realname
                self.learn(msg.nick, _account(msg.params[1]))
            case "NICK" if msg.params:
                known = fold(msg.nick) in self._by_nick
                account = self._by_nick.pop(fold(msg.nick), None)
                if known:
                    self._by_nick[fold(msg.params[0])] = account
            case "QUIT":
                self.forget(msg.nick)
            case "354" if len(msg.params) >= 4 and msg.params[1] == WHOX_QUERY_TYPE:
                self.learn(msg.params[2], None if msg.params[3] == "0" else msg.params[3])


def _account(value: str) -> str | None:
    return None if value in ("*", "") else value


def whox_line(nick: str) -> str:
    """The WHOX query asking for a nick's account."""
    return build_line("WHO", nick, f"%tna,{WHOX_QUERY_TYPE}")


def sasl_plain(account: str, password: str) -> list[str]:
    """The AUTHENTICATE lines carrying a SASL PLAIN response, chunked at 400 bytes."""
    payload = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()
    chunks = [payload[i : i + _SASL_CHUNK] for i in range(0, len(payload), _SASL_CHUNK)]
    if len(payload) % _SASL_CHUNK == 0:
        chunks.append("+")
    return [build_line("AUTHENTICATE", c) for c in chunks]


class Handshake:
    """IRCv3 capability negotiation and SASL PLAIN, fed one server line at a time."""

    def __init__(self, *, account: str | None = None, password: str | None = None) -> None:
        self.account = account
        self.password = password
        self.offered: set[str] = set()
        self.enabled: set[str] = set()
        self.sasl: bool | None = None  # None: not tried; True/False: logged in or refused
        self.done = False

    @staticmethod
    def start() -> list[str]:
        """Sent before NICK/USER, so registration waits for `CAP END`."""
        return ["CAP LS 302"]

    def feed(self, msg: IrcMessage) -> list[str]:
        """Lines to send in answer to `msg` (empty once registration is over)."""
        if self.done:
            if msg.command == "CAP" and len(msg.params) >= 3 and msg.params[1] == "DEL":
                self.enabled -= set(msg.params[-1].split())
            return []
        if msg.command == "001":
            self.done = True
            return []
        if msg.command == "CAP" and len(msg.params) >= 3:
            return self._cap(msg.params[1].upper(), msg.params)
        if msg.command == "AUTHENTICATE" and msg.params[:1] == ("+",):
            if self.password is None or self.account is None:
                return ["AUTHENTICATE *", "CAP END"]
            return sasl_plain(self.account, self.password)
        if msg.command in ("903", "907"):
            self.sasl = True
            return ["CAP END"]
        if msg.command in ("902", "904", "905", "906"):
            self.sasl = False
            return ["CAP END"]
        return []

    def _cap(self, sub: str, params: tuple[str, ...]) -> list[str]:
        caps = params[-1].split()
        if sub == "LS":
            self.offered |= {c.partition("=")[0] for c in caps}
            if len(params) >= 4 and params[2] == "*":
                return []  # more LS lines follow
            wanted = [c for c in WANTED_CAPS if c in self.offered]
            if "sasl" in wanted and self.password is None:
                wanted.remove("sasl")
            if not wanted:
                return ["CAP END"]
            return [build_line("CAP", "REQ", " ".join(wanted))]
        if sub == "ACK":
            self.enabled |= {c for c in caps if not c.startswith("-")}
            if "sasl" in self.enabled and self.password is not None and self.sasl is None:
                return ["AUTHENTICATE PLAIN"]
            return ["CAP END"]
        if sub == "NAK":
            return ["CAP END"]
        return []


def mention_as_prefix(text: str, *, me: str, prefix: str) -> str:
    """`ops_: store status` as `!store status`: a leading mention of the bot's nick.

    The nick the bot has now may not be its configured name (`ops_` when `ops` was taken),
    and only the configured name is known to the engine: a mention of the current nick is
    handed on in the prefix form the engine always understands. Anything else is unchanged.
    """
    body = text.lstrip()
    for form, ends in ((f"@{me}", ("", " ", ":", ",")), (me, (":", ","))):
        head, after = body[: len(form)], body[len(form) : len(form) + 1]
        if fold(head) == fold(form) and after in ends:
            rest = body[len(form) + len(after) :].strip()
            if prefix and rest.startswith(prefix):
                rest = rest[len(prefix) :].lstrip()
            return f"{prefix}{rest}" if rest else text
    return text


def room_of(msg: IrcMessage, account: str | None, chantypes: str = CHANNEL_TYPES) -> str:
    """The opsroom room a PRIVMSG belongs to."""
    target = msg.params[0] if msg.params else ""
    if is_channel(target, chantypes):
        return f"irc:{fold(target)}"
    return f"irc:@{account}" if account else f"irc:@~{msg.nick}"


def to_event(
    msg: IrcMessage,
    *,
    me: str,
    account: str | None,
    prefix: str = "!",
    chantypes: str = CHANNEL_TYPES,
) -> Inbound | None:
    """A PRIVMSG as an Inbound, or None (not a message the bot should see)."""
    if msg.command != "PRIVMSG" or len(msg.params) < 2 or not msg.nick:
        return None
    if fold(msg.nick) == fold(me) or "bot" in msg.tags or "draft/bot" in msg.tags:
        return None  # our own lines, and other bots' (IRCv3 bot tag)
    text = msg.params[1]
    if text.startswith("\x01"):
        return None  # CTCP (ACTION, VERSION, ...): not for the bot
    return Inbound(
        text=mention_as_prefix(strip_formatting(text), me=me, prefix=prefix),
        principal=f"irc:{account}" if account else f"irc:{GUEST}",
        room=room_of(msg, account, chantypes),
        direct=not is_channel(msg.params[0], chantypes),
        display_name=msg.nick,
        message_id=msg.tags.get("msgid"),
    )
