"""Everything the local runtime changes in moto, in one place and against one moto version.

`lambda_hook` runs our handlers when moto invokes a Lambda function, and `scope` lets moto answer
stepgraph's own clients (and only them). The private modules patch moto where the local runtime
needs it: `_dynamodb` (thread safety, transactions, speed-ups), `_stepfunctions` (the Tasks'
clients, speed-ups) and `_core` (speed-ups to every request). `install()` applies them all. They
are written against `MOTO_VERSION`, the lower bound of pyproject.toml's moto range: a later patch
release of the same minor is accepted (with a warning naming the version they were checked on),
another minor refused.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["MOTO_VERSION", "install", "require_moto", "speed_ups", "uninstall"]

import logging

MOTO_VERSION = "5.2.5"  # pyproject.toml's moto range starts here (tests/unit/test_emulator_pin.py)

logger = logging.getLogger("stepgraph.local")
_warned: set[str] = set()


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def require_moto(component: str) -> None:
    """Refuse a moto whose internals the patches were not written for: another minor, or an
    older patch release. A newer patch release of the same minor is let through with a warning."""
    import moto

    installed, written = _release(moto.__version__), _release(MOTO_VERSION)
    if installed[:2] != written[:2] or installed < written:
        raise RuntimeError(
            f"stepgraph_local.emulator.{component} patches moto internals written against moto {MOTO_VERSION} "
            f"(accepted: >={MOTO_VERSION},<{written[0]}.{written[1] + 1}), but moto {moto.__version__} is "
            f"installed. Install 'stepgraph[local]' again, or re-check the patches before widening the range."
        )
    if installed != written and moto.__version__ not in _warned:
        _warned.add(moto.__version__)
        logger.warning("emulator patches were checked on moto %s; running on moto %s", MOTO_VERSION, moto.__version__)


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
