"""The one exception type for user mistakes: bad input, bad params, wrong preset.

The CLI turns it into a single line on stderr and a non-zero exit, without a traceback.
Its message names the file, the column and the rows concerned whenever they are known.
"""


class InputError(Exception):
    """Something the user can fix in their export or params; never a bug in our code."""
