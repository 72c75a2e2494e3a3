"""What the command-line entry points (train, evaluate, sample) share: the help formatter, argparse types, and
the machine's physical memory (to refuse sizes that cannot fit)."""
import argparse
import os


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: ...)" where there is a fixed default; options filled in by --tiny say so themselves."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def positive(kind):
    """An argparse type: a number of ``kind`` that must be > 0 (a bad value is argparse's one-line error)."""

    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def non_empty(text):
    """An argparse type: a path that is not the empty string."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def parse_args(parser, argv=None):
    """``parser.parse_args(argv)``, with an option written ``--n=--`` refused as argparse refuses ``--n`` alone
    (one line, exit 2): Python's argparse drops that "--" and hands the option an empty list instead."""
    args = parser.parse_args(argv)
    for action in parser._actions:
        if action.option_strings and action.nargs is None and isinstance(getattr(args, action.dest, None), list):
            parser.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
    return args


def physical_memory():
    """Bytes of physical memory (os.sysconf), or None where the system does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None
