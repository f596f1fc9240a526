"""User errors at the command-line boundary: the API's words turned into the CLI's.

Why one table: the library's messages name Python parameters (``on_error='skip'``,
``keep_count=3``, ``out_dir``), which a command-line user never typed. Rather than every
module knowing both spellings, the CLI rewrites each message through :data:`FLAGS` once,
just before showing it as one line.
"""

from __future__ import annotations

import re
import sys

import typer
from typer.core import TyperGroup

try:  # typer 0.22 and later carry their own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer, on the click package
    from click import exceptions as click_errors

FLAGS: dict[str, str] = {
    "on_error": "--skip-bad",
    "overwrite": "--overwrite",
    "out_dir": "--out",
    "keep_count": "--keep-count",
    "keep": "--keep",
    "k": "--k",
    "executor_options": "--executor-options",
    "executor": "--executor",
    "detector_kwargs": "--detector-kwargs",
    "detector": "--detector",
    "whole_image": "--whole-image",
    "protect_tail": "--protect-tail",
    "mutual": "--mutual",
    "image_size": "--image-size",
    "scoring": "--scoring",
    "normalize": "--normalize",
    "aggregate": "--aggregate",
    "seed": "--seed",
    "masks": "--masks",
}
"""API parameter -> CLI flag, for every parameter a CLI user can set."""

SWITCHES = {"on_error='skip'": "--skip-bad", 'on_error="skip"': "--skip-bad",
            "overwrite=True": "--overwrite", "protect_tail=True": "--protect-tail",
            "mutual=True": "--mutual", "leave mutual off": "leave --mutual off"}
"""Whole ``name=value`` phrases that are a bare switch on the command line."""

_ASSIGNMENT = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, FLAGS)) + r")=")
_NAMES_WITH_UNDERSCORE = re.compile(
    r"(?<![\w.-])(" + "|".join(re.escape(n) for n in FLAGS if "_" in n) + r")(?![\w=])")


def in_cli_words(message: str) -> str:
    """``message`` with API parameter names replaced by the flags that set them."""
    for phrase, flag in SWITCHES.items():
        message = message.replace(phrase, flag)
    message = _ASSIGNMENT.sub(lambda m: FLAGS[m.group(1)] + " ", message)
    return _NAMES_WITH_UNDERSCORE.sub(lambda m: FLAGS[m.group(1)], message)


def one_line(message: str) -> str:
    """The message on one line (a user error is one line, however it was raised)."""
    return " ".join(message.split())


class OneLineUsageErrors(TyperGroup):
    """The command group, with click's own usage errors shown as one line, like ours.

    Why: a mistyped flag or a missing argument is caught by click before any command runs, and
    typer shows it as a usage line and a framed box. Every other user error of this CLI is one
    ``error: ...`` line with exit status 2, and a script or a user reading the terminal should
    not have to tell the two apart. Everything else (help, ``--version``, exit codes) is left to
    typer.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.UsageError as exc:
            if type(exc).__name__ != "NoArgsIsHelpError":  # that one has printed the help
                where = f"; see '{exc.ctx.command_path} --help'" if exc.ctx is not None else ""
                typer.secho(f"error: {one_line(exc.format_message()).rstrip('.')}{where}", err=True,
                            fg=typer.colors.RED)
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except (click_errors.Abort, typer.Abort):
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
