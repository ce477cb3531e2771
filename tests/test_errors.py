"""One base class for every error a user can see (``diffc.errors.DiffcError``), and the CLI's one
handler for it: the message on one line, exit 1."""

import pytest

from diffc.bitstreams import BitstreamError, CorruptStreamError
from diffc.cli import errors as cli_errors
from diffc.cli.errors import UserError
from diffc.codec.entropy import EmptyStackError, EntropyCodingError
from diffc.errors import DiffcError
from diffc.evaluation.errors import EvaluationError
from diffc.models.checkpoint import ModelError

@pytest.mark.parametrize(
    "error",
    [UserError, ModelError, EntropyCodingError, EmptyStackError, EvaluationError,
     BitstreamError, CorruptStreamError],
)
def test_every_user_visible_error_is_a_diffc_error(error):
    assert issubclass(error, DiffcError)


def test_the_cli_prints_any_diffc_error_as_its_message_on_one_line(capsys):
    class SomeLayersError(DiffcError):
        pass

    assert cli_errors.report(SomeLayersError("a model\n  that does not fit")) == 1
    assert capsys.readouterr().err == "diffc: error: a model that does not fit\n"
    assert cli_errors.describe(CorruptStreamError("chunk 2 fails its checksum")) == "chunk 2 fails its checksum"
    assert cli_errors.describe(RuntimeError("boom")) == (
        "internal error (RuntimeError: boom); set DIFFC_DEBUG=1 for the traceback")
