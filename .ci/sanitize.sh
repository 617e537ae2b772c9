#!/usr/bin/env bash
# The C++ extension built with AddressSanitizer + UndefinedBehaviorSanitizer (separate build
# directory and venv), then the engine, compiled-file, input, thread and log-helper (every ISA) tests and every fuzz seed
# corpus run under it. Any sanitizer report fails (halt_on_error, exitcode 86).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .venv-asan build-asan
python3 -m venv .venv-asan
.venv-asan/bin/python -m pip install -q --upgrade pip
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
CMAKE_ARGS="-DCMAKE_CXX_FLAGS='$SAN' -DCMAKE_SHARED_LINKER_FLAGS='-fsanitize=address,undefined' -DCMAKE_MODULE_LINKER_FLAGS='-fsanitize=address,undefined'" \
  .venv-asan/bin/python -m pip install -q -C build-dir=build-asan ".[test]"
LIBASAN="$(g++ -print-file-name=libasan.so)"
LIBUBSAN="$(g++ -print-file-name=libubsan.so)"
export LD_PRELOAD="$LIBASAN:$LIBUBSAN"
# Python itself leaks by design at exit: leak checking would report the interpreter, not us.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=86:abort_on_error=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86"
cd /tmp  # import the installed (sanitized) package, not the source tree
T="$OLDPWD/tests"
timeout -k 30 1500 "$OLDPWD/.venv-asan/bin/python" -m pytest -q -p no:cacheprovider -x \
  "$T/test_engine.py" "$T/test_engine_bad_input.py" "$T/test_engine_state_machine.py" "$T/test_threads.py" \
  "$T/test_inputs.py" "$T/test_hostile_batch_inputs.py" "$T/test_compiled_file.py" "$T/test_forged_compiled.py" \
  "$T/test_hostile_files.py" "$T/test_fuzz_corpora.py" "$T/test_isa.py" "$T/test_evaluate_parsing.py"
