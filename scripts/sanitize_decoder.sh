#!/usr/bin/env bash
# Builds the compiled trace decoder with AddressSanitizer and UndefinedBehaviorSanitizer, then runs under it the
# decoder tests and a fuzz run of tests/collector/fuzz_decoder.py (bounded: FUZZ_SECONDS, default 60). Any memory
# error or undefined behaviour aborts the run with a report.
#
#   scripts/sanitize_decoder.sh                   # tests + 60 s of fuzzing
#   FUZZ_SECONDS=600 scripts/sanitize_decoder.sh  # longer
#   scripts/sanitize_decoder.sh --seed 7          # arguments go to the fuzz harness
#
# Needs a C compiler with the sanitizer runtimes (gcc, or CC=clang) and the Python headers; run it with the
# project's virtualenv active. The installed build is left alone: the sanitizer build goes to a temporary
# directory and scripts/sanitized_decoder.py loads it in its place. The fuzz run uses the harness's own mutator:
# with gcc's ASan runtime preloaded, atheris's libFuzzer no longer receives coverage and its corpus stops growing.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
CC="${CC:-gcc}"

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
include="$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
suffix="$(python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
library="$build/_fastdecode$suffix"
echo "building $library with ASan + UBSan ($CC)"
"$CC" -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
    -I"$include" collector/processors/_fastdecode.c -o "$library"

# Python itself is not built with ASan: preload the runtime, and let malloc (not pymalloc) serve Python objects so
# ASan sees their bounds too. Leak reports are off: CPython keeps objects alive until exit by design (the decoder
# tests check leaks with tracemalloc and reference counts instead).
export LD_PRELOAD="$("$CC" -print-file-name=libasan.so)"
export PYTHONMALLOC=malloc
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TRACEKIT_SANITIZED_DECODER="$library"
export PYTHONPATH="scripts${PYTHONPATH:+:$PYTHONPATH}"

echo "== decoder tests under the sanitizers"
python -m pytest -p sanitized_decoder tests/collector/test_fastdecode.py -q -x -p no:cacheprovider

echo "== fuzzing for ${FUZZ_SECONDS}s under the sanitizers"
python -c 'import sys, sanitized_decoder; from tests.collector.fuzz_decoder import main; sys.exit(main())' \
    --builtin --seconds "$FUZZ_SECONDS" "$@"
