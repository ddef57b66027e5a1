"""One way for medfed's console entry points to end: exit codes and one-line errors."""

from __future__ import annotations

from collections.abc import Callable

import typer

from medfed.shared.errors import MedfedError


def _stderr(text: str) -> None:
    typer.echo(text, err=True)


def run_cli(
    app: typer.Typer,
    say: Callable[[str], None] = _stderr,
    runtime_errors: tuple[type[MedfedError], ...] = (),
) -> None:
    """Run `app`: a user error (`MedfedError`) exits 2 with one line naming the problem,
    `runtime_errors` and anything unexpected exit 1, click's usage errors keep their code.
    Never a bare traceback."""
    try:
        code = app(standalone_mode=False)  # click returns typer.Exit's code here
    except runtime_errors as error:
        say(f"error: {error}")
        raise SystemExit(1) from None
    except MedfedError as error:
        say(f"error: {error}")
        raise SystemExit(2) from None
    except (typer.Exit, SystemExit) as done:
        raise SystemExit(getattr(done, "exit_code", getattr(done, "code", 0))) from None
    except Exception as error:  # click's usage errors carry their own exit code
        exit_code = getattr(error, "exit_code", None)
        if exit_code is None:
            say(f"internal error: {type(error).__name__}: {error}")
            raise SystemExit(1) from None
        if hasattr(error, "show"):
            error.show()
        raise SystemExit(exit_code) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)
