"""The toolkit's exception hierarchy: every error a user can cause is a DciaError.

Messages say what was wrong and what to do about it.
"""


class DciaError(Exception):
    """Base of every error the toolkit raises on purpose."""


class ParameterRangeError(DciaError, ValueError):
    """A layer parameter is outside the range the integer semantics define."""


class WireFormatError(DciaError, ValueError):
    """A tensor packet or tensor cannot be encoded or decoded as DCIA."""


class ArtifactError(DciaError):
    """The compiled P4 artifacts are missing, stale or do not match each other."""


class CapabilityError(DciaError, ValueError):
    """A node's capability record is incomplete or has a value outside its range."""


class TopologyError(DciaError):
    """A topology description is malformed or inconsistent (unknown node, unlinked path)."""


class PlanError(DciaError):
    """No partition plan satisfies the model, the path and the constraints."""


class IntegrityError(DciaError):
    """A partition manifest is unsigned, tampered with, wrongly signed, or does not match
    what would be deployed."""


class PolicyError(DciaError):
    """A placement breaks the operator's policy (the topology's [policy]); names the rule."""


class ModelImportError(DciaError):
    """A model file cannot be read, or uses something DCIA cannot run."""


class ModelFileError(DciaError):
    """A saved quantized model cannot be read back."""


class ModelIntegrityError(ModelFileError):
    """A saved quantized model does not match its content hash: it was changed after saving."""


class CalibrationError(DciaError, ValueError):
    """Calibration samples cannot be read, or do not fit the model (shape, type, NaN or inf)."""
