"""Maps the repository's top-level folders into the `tracekit` import namespace.

Everything else about the distribution lives in pyproject.toml. The folders (instrumentors/, collector/, tui/,
dashboards/, demo/) show the data path at a glance; installing them as `tracekit.<folder>` keeps PyPI's unrelated
`collector` and `tui` distributions from clashing with ours. See docs/architecture.md.
"""

from setuptools import Extension, find_packages, setup

FOLDERS = {
    "tracekit": "tracekit",
    "tracekit.collector": "collector",
    "tracekit.instrumentors": "instrumentors",
    "tracekit.tui": "tui",
    "tracekit.dashboards": "dashboards",
    "tracekit.demo": "demo",
}

packages: list[str] = []
for package, folder in FOLDERS.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir=FOLDERS,
    package_data={
        "tracekit.tui": ["*.tcss", "**/*.tcss"],
        "tracekit.dashboards": ["*.json", "*.kql", "*.toml", "alert_rules/*.toml"],
    },
    # The compiled twin of the collector's hot path, the OTLP trace decoder. Optional: without a C compiler the
    # install succeeds and the Python decoder runs.
    ext_modules=[Extension("tracekit.collector.processors._fastdecode", ["collector/processors/_fastdecode.c"],
                           optional=True)],
)
