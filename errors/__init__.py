"""The base class of every error diffc reports to its user.

Every layer raises its own kind (``bitstreams.BitstreamError``, ``codec.entropy.EntropyCodingError``,
``models.checkpoint.ModelError``, ``evaluation.errors.EvaluationError``, ``cli.errors.UserError``),
each derived from ``DiffcError``, so that a caller, and the CLI's one handler, can catch them all
with one class. This module imports nothing, so any layer may import it without breaking the
direction of imports (DESIGN.md section 1: ``bitstreams`` imports neither ``codec`` nor
``models``; ``models`` never imports ``codec``).
"""


class DiffcError(Exception):
    """A failure the user can act on, with a message that says what is wrong, where, and what to do.
    The CLI prints the message on one line and exits 1; any other exception is an internal error."""
