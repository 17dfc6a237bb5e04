"""The errors a user can cause, each reported as one line without a traceback."""

import argparse


class ConfigError(ValueError):
    """A setting that cannot be right: an unknown name, a value out of range."""


class DataError(RuntimeError):
    """Data that cannot be found or read; the message says where we looked."""


class OutputError(RuntimeError):
    """A run's output (record, checkpoint) that cannot be written: the message names the file
    and the reason (no space left, not a directory, ...)."""


USER_ERRORS = (ConfigError, DataError, OutputError)


def one_line(error: BaseException) -> str:
    """The text of an error on one line: its lines joined, runs of spaces collapsed (an error
    of a library may span several lines; the first alone often says nothing)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def checked_call(fn, what: str, *args, **settings):
    """fn(*args, **settings), with a one-line ConfigError for a setting `fn` does not take."""
    import inspect

    try:
        inspect.signature(fn).bind(*args, **settings)
    except TypeError as error:
        raise ConfigError(f"{what}: {error}") from None
    return fn(*args, **settings)


def command_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of `python -m adamrepro.<module>`: its docstring as the help text,
    line breaks kept."""
    return argparse.ArgumentParser(
        prog=f"python -m adamrepro.{module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def hydra_line(error: BaseException) -> str:
    """A mistake that Hydra catches before our code (an unknown config choice, a key that does
    not exist) on one line: Hydra's message without its config search path, and its cause."""
    options = getattr(error, "options", None)
    head = str(error).split("\n\n")[0]
    text = " ".join(head.split())
    if options:
        text += f" (choose one of: {', '.join(options)})"
    cause = error.__cause__
    if cause is not None and str(cause).strip():
        text += f" ({str(cause).strip().splitlines()[0]})"
    return text or type(error).__name__
