"""Exceptions shared by the whole package.

Every error a user can cause (a bad file, a bad name, a bad model) is a ``UserError``
subclass whose message says what was expected and what was found, in one line.
The command-line tool turns them into exit status 2; nodes fail their lifecycle
transition with the message.
"""


class UserError(Exception):
    """An error caused by input the user can fix; its message is one readable line."""


class DescriptionError(UserError):
    """A robot description (URDF, xacro, XML string) could not be loaded or understood."""


class ChainError(DescriptionError):
    """The arm chain could not be determined (no movable joint, ambiguous tips, unknown link)."""


class ModelContractError(UserError):
    """An ONNX model or its contract is missing, corrupt or does not match what is expected."""


class ConfigurationError(UserError):
    """A node or tool was configured with values that cannot work."""
