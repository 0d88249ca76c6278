"""Typed errors for the wire layer (``tx/``).

Every failure caused by bad *input* (bytes off the wire, a damaged log file,
a malformed signature) is reported as a subclass of :class:`TxError`, never
as a bare ``ValueError``/``IndexError``/traceback from deep inside a decoder.
Callers can therefore catch ``TxError`` at a boundary and turn ``e.code`` into
a stable, machine-readable rejection reason (receipts, CLI exit messages).

Conventions, so the hierarchy stays easy to extend:

* every class sets a class attribute ``code`` (UPPER_SNAKE, unique, stable:
  it may appear in receipts and logs, so never rename one);
* ``str(e)`` is ``"CODE: message"``;
* a new error is just a subclass with a docstring and a ``code``; add
  keyword-only context attributes only when callers need them (as the log
  errors do with ``offset``/``frame_index``).
"""

from __future__ import annotations


class TxError(Exception):
    """Base class of all wire-layer errors; ``code`` is a stable identifier."""

    code: str = "TX_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


# --- encoding -------------------------------------------------------------


class DecodeError(TxError):
    """Bytes could not be decoded into the expected structure."""

    code = "DECODE"


class NonCanonicalEncoding(TxError):
    """Bytes decoded, but are not the single canonical encoding of the value.

    Rejected because two byte strings for one transaction would give two
    digests (and two ids) for the same intent.
    """

    code = "NON_CANONICAL"


# --- signatures -----------------------------------------------------------


class SignatureError(TxError):
    """A signature is malformed or does not recover to a public key."""

    code = "BAD_SIGNATURE"


class HighSSignature(SignatureError):
    """Signature has ``s > n/2``; only the low-s form is valid (malleability)."""

    code = "HIGH_S"


# --- log file -------------------------------------------------------------


class LogFormatError(TxError):
    """The block log file is damaged or not a log file.

    ``offset`` is the byte offset of the start of the offending frame (or of
    the header, i.e. 0, for header errors); ``frame_index`` is the 0-based
    index of that frame (``None`` for header errors).
    """

    code = "LOG_FORMAT"

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        frame_index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.offset = offset
        self.frame_index = frame_index


class BadMagic(LogFormatError):
    """The file does not start with the log magic bytes."""

    code = "LOG_BAD_MAGIC"


class UnsupportedVersion(LogFormatError):
    """The header names a log format version this code does not read."""

    code = "LOG_VERSION"


class ChecksumMismatch(LogFormatError):
    """A frame's checksum does not match its kind, length and payload."""

    code = "LOG_CHECKSUM"


class TruncatedLog(LogFormatError):
    """The file ends in the middle of the header or of a frame (torn write)."""

    code = "LOG_TRUNCATED"


class FrameTooLarge(LogFormatError):
    """A frame header declares a payload longer than ``MAX_FRAME``."""

    code = "LOG_FRAME_TOO_LARGE"


class UnknownFrameKind(LogFormatError):
    """A frame header carries a kind byte this format does not define."""

    code = "LOG_FRAME_KIND"
