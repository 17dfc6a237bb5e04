"""The two kinds of error a user can cause, each reported as one line without a traceback."""


class ConfigError(ValueError):
    """A setting that cannot be right: an unknown name, a value out of range."""


class DataError(RuntimeError):
    """Data that cannot be found or read; the message says where we looked."""


def checked_call(fn, what: str, *args, **settings):
    """fn(*args, **settings), with a one-line ConfigError for a setting `fn` does not take."""
    import inspect

    try:
        inspect.signature(fn).bind(*args, **settings)
    except TypeError as error:
        raise ConfigError(f"{what}: {error}") from None
    return fn(*args, **settings)
