"""One place where the command line turns domain errors into a one-line reason and an exit code.

Exit codes (a script can trust them without parsing text; docs/exit-codes.md is the user's copy):

====  ==========================================================================================
0     done; for a transaction: ``approved`` or ``recovered`` (money moved and a TAC proves it)
1     the command could not finish: a reader, card or PSAM link failed, the disk failed (full, I/O
      error), or an error nobody foresaw (still one line, never a traceback)
2     usage or input error: an option, a file, an image, a profile, a key set, a journal that is not
      a sound ykt journal, a PSAM that cannot start; nothing was changed
3     the transaction was ``declined``: refused before any money moved
4     the transaction did not complete: ``failed`` (nothing charged, or charged with a TAC that
      clearing checks) or ``torn`` (its grey record waits for the card's next tap)
130   interrupted (Ctrl-C)
====  ==========================================================================================

``ykt terminal run`` exits with the code of its worst outcome (4 over 3 over 0); a QR code the validator
refuses is a declined ride (3), at ``ykt terminal scan`` and at ``ykt qr verify`` alike; a top-up
(``ykt wallet``) exits 0 loaded, 3 refused, 4 pending. Every error exits with one line on stderr,
``ykt: error: <reason>``, naming the file, field or option.
"""
from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

import click

from apdu.reader import ReaderError
from apdu.status import CardError
from terminal_sim.journal import JournalError
from terminal_sim.validator import TerminalError
from ykt_card.host.card import CardResponseError

F = TypeVar("F", bound=Callable[..., object])

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DECLINED = 3
EXIT_INCOMPLETE = 4
EXIT_INTERRUPTED = 130

OUTCOME_EXIT: dict[str, int] = {"approved": EXIT_OK, "recovered": EXIT_OK, "declined": EXIT_DECLINED,
                                "failed": EXIT_INCOMPLETE, "torn": EXIT_INCOMPLETE}
"""The exit code of a transaction by its outcome's status."""

STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})
"""OSErrors that are the machine's failure (full disk, quota, I/O), not the user's input: exit 1."""


def outcome_exit(statuses: Iterable[str]) -> int:
    """The exit code of one or more outcomes: the worst of them (no outcome: 0)."""
    return max((OUTCOME_EXIT[status] for status in statuses), default=EXIT_OK)


class YktGroup(click.Group):
    """A click group whose commands report our errors as `ykt: error: <reason>` on one line."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:  # output piped into `head` and closed: not an error of ours
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            click.echo("ykt: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (ReaderError, CardError, CardResponseError) as exc:  # the link or the card said no
            fail(one_line(exc), EXIT_FAILED)
        except (JournalError, TerminalError) as exc:   # the journal or PSAM given cannot be used
            fail(one_line(exc), EXIT_BAD_INPUT)
        except OSError as exc:
            fail(one_line(exc), EXIT_FAILED if exc.errno in STORAGE_ERRNOS else EXIT_BAD_INPUT)
        except (ValueError, LookupError) as exc:
            fail(one_line(exc), EXIT_BAD_INPUT)
        except Exception as exc:  # a failure we did not foresee: still one line, still no key material
            fail(f"{exc.__class__.__name__}: {one_line(exc)}", EXIT_FAILED)


def fail(reason: str, code: int) -> None:
    """Print `ykt: error: <reason>` on stderr and exit with `code`."""
    click.echo(f"ykt: error: {reason}", err=True)
    sys.exit(code)


def one_line(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return " ".join(text.split())
