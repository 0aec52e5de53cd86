"""Put a sanitizer build of the compiled trace decoder in place of the installed one, before anything imports it.

scripts/sanitize_decoder.sh builds `_fastdecode` with AddressSanitizer and UndefinedBehaviorSanitizer into a
temporary directory and names the file in TRACEKIT_SANITIZED_DECODER. Importing this module (as a pytest plugin,
`-p sanitized_decoder`, or first thing in a fuzz run) loads that file under the extension's import name, so the
decoder tests and the fuzz harness exercise the sanitized code without touching the installed build.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

PACKAGE = "tracekit.collector.processors"
NAME = f"{PACKAGE}._fastdecode"


def install(path: str) -> None:
    if NAME in sys.modules and getattr(sys.modules[NAME], "__file__", None) != path:
        raise RuntimeError(f"{NAME} was imported before the sanitizer build could replace it")
    package = importlib.import_module(PACKAGE)
    spec = importlib.util.spec_from_file_location(NAME, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[NAME] = module
    setattr(package, "_fastdecode", module)


install(os.environ["TRACEKIT_SANITIZED_DECODER"])


def pytest_report_header() -> str:
    return f"compiled decoder: sanitizer build {os.environ['TRACEKIT_SANITIZED_DECODER']}"
