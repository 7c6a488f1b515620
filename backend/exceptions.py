"""Exceptions that LabelCast raises for problems a user can fix; each message says how."""


class LabelCastError(Exception):
    """Base class of every LabelCast error whose message is meant for the user."""


class CommandError(LabelCastError):
    """A command-line invocation cannot be carried out (bad file, bad option value)."""


class DataFormatError(LabelCastError, ValueError):
    """A labeled data file is not in a format LabelCast reads."""


class ImageDecodeError(LabelCastError, ValueError):
    """Image bytes cannot be decoded: empty, corrupt, truncated, not an image, or too large."""


class EncoderLoadError(LabelCastError):
    """An encoder spec is invalid or its weights cannot be found or loaded."""


# --- service: settings, store, Label Studio protocol (issue 4) ------------------------------


class SettingsError(LabelCastError, ValueError):
    """An environment variable or a project's ``extra_params`` has a value LabelCast rejects."""


class LabelConfigError(LabelCastError, ValueError):
    """A Label Studio labeling config lacks what LabelCast needs (an Image and Choices tag)."""


class RequestError(LabelCastError, ValueError):
    """An HTTP request to the backend is malformed (missing field, wrong type)."""


class ProjectNotFoundError(LabelCastError, LookupError):
    """A request names a Label Studio project the backend has not been set up for."""


class LabelStudioError(LabelCastError):
    """Label Studio answered a call from the backend with an error, or could not be reached."""


class ImageFetchError(LabelCastError):
    """A task's image could not be downloaded (bad reference, HTTP error, missing credentials)."""


class UnusableLabelsError(LabelCastError):
    """Labels arrived but the image of every labeled task failed (refused, unreachable or
    undecodable): ``image_errors`` is ``{task_id: reason}``."""

    def __init__(self, n_labels: int, image_errors: dict[int, str]) -> None:
        super().__init__(f"{n_labels} labels arrived but none of their images could be used")
        self.n_labels = n_labels
        self.image_errors = dict(image_errors)
