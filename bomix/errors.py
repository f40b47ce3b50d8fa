"""The exception tree. Every message states the rule first, then the offending value."""


class BomixError(Exception):
    """Base class of every error bomix raises on purpose."""


class InvalidWeightsError(BomixError, ValueError):
    """A mixture (or a floor/cap vector) breaks a rule of the simplex."""


class InvalidSpaceError(BomixError, ValueError):
    """A MixtureSpace cannot be built from the given domains, floors and caps."""


class ConfigError(BomixError, ValueError):
    """A config file, a `--set` override or a constructor argument is malformed."""


class UnknownNameError(ConfigError, KeyError):
    """An optimizer, evaluator, runner or objective name that is not registered."""

    def __str__(self):  # KeyError would repr() the message
        return str(self.args[0])


class StudyError(BomixError):
    """A study directory cannot be created, loaded or written."""


class SpecMismatchError(StudyError):
    """Resuming a study with a spec (space, objective, optimizer, seed) different from the stored one."""


class StudyLockedError(StudyError):
    """Another process holds the study's write lock."""


class JournalCorruptedError(StudyError):
    """The event journal has a damaged line that is not the last one."""


class EvaluationError(BomixError):
    """An evaluator returned something that is not a valid evaluation (missing or non-finite losses)."""
