"""Everything the local runtime changes in moto, in one place and against one moto version.

`lambda_hook` runs our handlers when moto invokes a Lambda function, and `scope` lets moto answer
stepgraph's own clients (and only them). The private modules patch moto where the local runtime
needs it: `_dynamodb` (thread safety, transactions, speed-ups), `_stepfunctions` (the Tasks'
clients, speed-ups) and `_core` (speed-ups to every request). `install()` applies them all; each
refuses a moto other than `MOTO_VERSION`, the version `pyproject.toml` pins.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["MOTO_VERSION", "install", "require_moto", "speed_ups", "uninstall"]

MOTO_VERSION = "5.2.5"  # pyproject.toml pins moto to this (tests/unit/test_emulator_pin.py)


def require_moto(component: str) -> None:
    """Refuse any moto but `MOTO_VERSION`: the patches rely on its internals."""
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"stepgraph_local.emulator.{component} patches moto internals written against moto=={MOTO_VERSION}, "
            f"but moto=={moto.__version__} is installed. Install moto=={MOTO_VERSION}, or re-check the patches "
            "before bumping the pin."
        )


def speed_ups() -> tuple[str, ...]:
    """The names of the patches that only save time (what `install` can leave out)."""
    from . import _core, _dynamodb, _stepfunctions

    return _dynamodb.SPEED_UPS + _stepfunctions.SPEED_UPS + _core.SPEED_UPS


def install(without: Collection[str] = ()) -> None:
    """Apply every patch but the speed-ups named in `without` (idempotent); on another moto, none."""
    require_moto("install")
    unknown = set(without) - set(speed_ups())
    if unknown:
        raise ValueError(f"not speed-ups of the emulator: {sorted(unknown)}")
    from . import _core, _dynamodb, _stepfunctions, lambda_hook

    lambda_hook.install()
    _dynamodb.install(without)
    _stepfunctions.install(without)
    _core.install(without)


def uninstall() -> None:
    """Give moto back its own code (idempotent). The hook's registrations are kept."""
    from . import _core, _dynamodb, _stepfunctions, lambda_hook

    lambda_hook.uninstall()
    _dynamodb.uninstall()
    _stepfunctions.uninstall()
    _core.uninstall()
