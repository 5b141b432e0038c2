"""One place where the command line turns domain errors into a one-line reason and a non-zero exit."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

import click

from apdu.reader import ReaderError
from apdu.status import CardError
from ykt_card.host.card import CardResponseError

F = TypeVar("F", bound=Callable[..., object])

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


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
            sys.exit(130)
        except (ReaderError, CardError, CardResponseError) as exc:  # the link or the card said no
            click.echo(f"ykt: error: {one_line(exc)}", err=True)
            sys.exit(EXIT_FAILED)
        except (ValueError, LookupError, OSError) as exc:
            click.echo(f"ykt: error: {one_line(exc)}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except Exception as exc:  # a failure we did not foresee: still one line, still no key material
            name = exc.__class__.__name__
            click.echo(f"ykt: error: {name}: {one_line(exc)}", err=True)
            sys.exit(EXIT_FAILED)


def one_line(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return " ".join(text.split())
