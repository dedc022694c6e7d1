"""Python model of what `qemu-img dd` copies (parity.md, "The window,
precisely"), plus qemu's size-operand syntax (parity.md row 11).

Independent of instar's C window math on purpose: the e2e tests check
instar against both this model and the live qemu-img.
"""
import re

INT64_MAX = (1 << 63) - 1
BS_MAX = 2147483647
SECTOR = 512

_SUFFIX = {"": 1, "b": 1, "B": 1, "k": 1 << 10, "K": 1 << 10, "M": 1 << 20,
           "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}


class OperandError(ValueError):
    pass


def round_up(n, to=SECTOR):
    return (n + to - 1) // to * to


def parse_size(text):
    """qemu size syntax: [ws][+](hex | dec[.frac])[suffix]; returns an int
    or raises OperandError. A fraction needs a suffix; `1.0` is accepted."""
    m = re.fullmatch(r"[ \t\n\v\f\r]*\+?(?:0[xX]([0-9a-fA-F]+)|([0-9]+)(?:\.([0-9]*))?)"
                     r"([bBkKMGTPE]?)", text)
    if not m:
        raise OperandError(f"bad size {text!r}")
    hexdigits, whole, frac, suffix = m.groups()
    mult = _SUFFIX[suffix]
    if hexdigits is not None:
        value = int(hexdigits, 16) * mult
    elif frac is not None and suffix == "" and frac.strip("0") != "":
        raise OperandError(f"fraction without suffix {text!r}")
    else:
        value = int(whole) * mult
        if frac:
            value += int(frac) * mult // 10 ** len(frac)
    if value >= 1 << 64:
        raise OperandError(f"size out of range {text!r}")
    return value


class Window:
    """start/end in bytes of the input; out_len the raw output size."""

    def __init__(self, start, end, skip_message):
        self.start = start
        self.end = end
        self.skip_message = skip_message

    @property
    def length(self):
        return max(0, self.end - self.start)

    @property
    def out_len(self):
        return round_up(self.length)

    def __repr__(self):
        return (f"Window(start={self.start}, end={self.end}, "
                f"out_len={self.out_len}, skip_message={self.skip_message})")


def window(input_size, bs=512, count=None, skip=None):
    """The window qemu-img dd copies from an input of `input_size` bytes
    (raw: the file size)."""
    if not 1 <= bs <= BS_MAX:
        raise OperandError("bs out of range")
    for v in (count, skip):
        if v is not None and not 0 <= v <= INT64_MAX:
            raise OperandError("count/skip out of range")
    size = round_up(input_size)
    if count is not None and count <= INT64_MAX // bs and count * bs < size:
        size = count * bs
    if skip is not None and (skip > INT64_MAX // bs or skip * bs > size):
        return Window(0, 0, True)
    start = skip * bs if skip is not None else 0
    return Window(start, size, False)


def window_from_args(input_size, args):
    """Model for an operand list such as ["bs=1k", "count=3"] (no if/of
    needed; repeated operands: last wins)."""
    ops = {}
    for a in args:
        if "=" in a and not a.startswith("-"):
            k, v = a.split("=", 1)
            if k in ("bs", "count", "skip"):
                ops[k] = parse_size(v)
    return window(input_size, ops.get("bs", 512), ops.get("count"),
                  ops.get("skip"))


def expected_output(read_input, input_size, args):
    """(bytes, Window): the raw output qemu-img dd should produce.
    read_input(start, end) returns the input bytes in that range (beyond the
    input's end qemu reads zeros)."""
    w = window_from_args(input_size, args)
    data = read_input(w.start, min(w.end, input_size)) if w.length else b""
    return data + bytes(w.out_len - len(data)), w
