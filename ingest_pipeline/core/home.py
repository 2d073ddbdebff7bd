"""Where the pipeline keeps its state and finds its filespecs, without Dagster: the command line's
commands that need no Dagster run (`status`, `sql`, `check-spec`, ...) resolve them from here."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = ".ingest"


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """`--home`, else $INGEST_HOME, else `.ingest/` in the working directory; made absolute."""
    return Path(home or os.environ.get("INGEST_HOME") or DEFAULT_HOME).expanduser().resolve()


def resolve_filespecs(filespecs: str | os.PathLike | None = None) -> Path:
    """`--filespecs`, else $INGEST_FILESPECS, else the project's `filespecs/`; made absolute."""
    return Path(filespecs or os.environ.get("INGEST_FILESPECS") or PROJECT_ROOT / "filespecs").expanduser().resolve()
