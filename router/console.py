"""`router console`: the Streamlit console, started warm.

`streamlit run app.py` builds the routing engine (database migration, classifier session, tier
checks) and imports the page libraries when the first browser arrives, so the first page takes
seconds. This launcher does that work first, in the same process, and only then opens the port, so
the first page finds the engine in Streamlit's resource cache.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"

log = logging.getLogger("router.console")


def _shared_module() -> ModuleType:
    """pages/_shared.py, registered under the name app.py imports it by, so the page run that
    follows finds this very module (and its engine cache) instead of loading a second copy."""
    name = "pages._shared"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "pages" / "_shared.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {ROOT / 'pages' / '_shared.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def warm() -> None:
    """Import what the pages import and build the process's engine into the page cache."""
    started = time.perf_counter()
    try:
        # The pages' libraries (about a second to import cold), then the engine.
        for name in ("pandas", "plotly.express"):
            importlib.import_module(name)
        _shared_module().warm_engine()
    except Exception as exc:  # the first page shows the same error to the operator
        log.warning("console warm-up failed (the first page will say why): %s", exc)
        return
    print(f"routing engine ready in {time.perf_counter() - started:.1f} s", flush=True)


def run(host: str, port: int, *, headless: bool = True, warm_first: bool = True) -> int:
    if not APP.is_file():
        print(f"error: {APP} is missing: run the console from a checkout of the project", file=sys.stderr)
        return 2
    from streamlit.web import bootstrap

    if warm_first:
        warm()
    # No file watcher: an operator console does not reload on edits, and watching a checkout (its
    # .venv included) costs inotify events and a thread that can hold up shutdown.
    flags = {"server.address": host, "server.port": port, "server.headless": headless,
             "server.fileWatcherType": "none"}
    bootstrap.load_config_options(flag_options=flags)
    bootstrap.run(str(APP), False, [], flags)
    return 0
