"""Email addresses: the one check that both configuration loading and rendering use.

Owns: parsing "user@domain", "<user@domain>" and "Name <user@domain>" into an
`email.headerregistry.Address`, refusing anything a message could not carry as written:
a line break or control character, two addresses in one entry ("a@x.org;b@x.org", which
a lenient parser reads as the first alone), a non-ASCII local part (needs SMTPUTF8, which
we do not use), a domain that is not a host name (an underscore, a trailing dot, an empty
label). Config loading calls it, so what passes `check-config` is exactly what renders.

Must not: do I/O, look up DNS, or know about settings keys (callers name the key).
"""

from __future__ import annotations

import re
import unicodedata
from email.headerregistry import Address

# A plain ASCII addr-spec (RFC 5321 dot-string @ LDH host name); no quoted local parts,
# no address literals. No "=?" either: see `monitor.deliver.email_message` on encoded-words.
_LOCAL_PART = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDR_SPEC = re.compile(rf"{_LOCAL_PART}@{_LABEL}(?:\.{_LABEL})*")
MAX_ADDRESS_CHARS = 254  # RFC 5321 4.5.3.1.3, as a path less its angle brackets

_BREAKS = frozenset("\r\n\t\v\f\x85\u2028\u2029")
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def parse_address(text: str, role: str = "address") -> Address:
    """`text` as an Address, or ValueError with a one-line reason that starts with `role`
    (or with the quoted text when `role` is empty).

    Accepted: "user@domain", "<user@domain>", "Name <user@domain>" and
    '"Name, with punctuation" <user@domain>'.
    """
    what = f"{role} {text!r}" if role else repr(text)
    if any(char in _BREAKS or unicodedata.category(char) in _DROP_CATEGORIES for char in text):
        raise ValueError(f"{what} contains a line break or control character")
    stripped = text.strip()
    name = ""
    addr = stripped
    if stripped.endswith(">") and "<" in stripped:
        opening = stripped.rindex("<")
        name, addr = stripped[:opening].strip(), stripped[opening + 1 : -1].strip()
        name = _display_name(name, what)
    if any(separator in addr for separator in ",;") or addr.count("@") > 1:
        raise ValueError(f"{what} holds more than one address: list each one separately")
    _check_addr_spec(addr, what)
    return Address(display_name=name, addr_spec=addr)


def _display_name(name: str, what: str) -> str:
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        inner = name[1:-1]
        if re.search(r'(?<!\\)"', inner):
            raise ValueError(f"{what} has an unbalanced quote in its name")
        return inner.replace('\\"', '"').replace("\\\\", "\\")
    if any(char in name for char in ',;@<>"'):
        raise ValueError(
            f"{what}: more than one address, or a name with , ; @ < > or a quote "
            'that is not in double quotes (write "Name, Desk" <user@domain>)'
        )
    return name


def _check_addr_spec(addr: str, what: str) -> None:
    if ADDR_SPEC.fullmatch(addr) and "=?" not in addr and len(addr) <= MAX_ADDRESS_CHARS:
        return
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        problem = "is not an email address (user@domain)"
    elif not local.isascii():
        problem = (
            "has a non-ASCII local part (before the @), which mail servers without SMTPUTF8 refuse"
        )
    elif not domain.isascii():
        problem = f"has a non-ASCII domain: write it in its ASCII form ({_idna_hint(domain)})"
    elif domain.endswith("."):
        problem = "ends with a dot"
    elif not re.fullmatch(rf"{_LABEL}(?:\.{_LABEL})*", domain):
        problem = (
            f"has a domain that is not a host name ({domain!r}: letters, digits and hyphens "
            "between dots; no underscore, no empty label)"
        )
    elif len(addr) > MAX_ADDRESS_CHARS:
        problem = f"is longer than {MAX_ADDRESS_CHARS} characters"
    else:
        problem = "is not a plain user@domain address (letters, digits and !#$%&'*+/=?^_`{|}~.- before the @)"
    raise ValueError(f"{what} {problem}")


def _idna_hint(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "xn--…"
