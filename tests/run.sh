#!/usr/bin/env bash
# The project's test command (README "Run the tests"). Builds everything and runs every test project,
# then prints one plain summary line "N passed, N failed[, N skipped]" taken from the TRX results.
set -uo pipefail
cd "$(dirname "$0")/.."

# The metrics tests run Prometheus's own tools (promtool and a real Prometheus server), and the Kubernetes
# manifests are rendered with kubectl kustomize: Debian's packages, installed when missing.
if [ "$(id -u)" -eq 0 ]; then apt_get="apt-get"; else apt_get="sudo apt-get"; fi
missing=()
{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || missing+=(prometheus)
command -v kubectl >/dev/null || missing+=(kubernetes-client)
# The Python client's tests use Debian's grpcio, protobuf, pytest and aiohttp (OpenRLHF's HTTP client); /usr/bin/python3,
# because a pyenv python3 on PATH does not see them.
/usr/bin/python3 -c "import grpc, google.protobuf, pytest" 2>/dev/null || missing+=(python3-grpcio python3-protobuf python3-pytest)
# The OpenAI-compatible routes' tests call them as lm-eval does, with requests.
/usr/bin/python3 -c "import requests" 2>/dev/null || missing+=(python3-requests)
/usr/bin/python3 -c "import aiohttp" 2>/dev/null || missing+=(python3-aiohttp)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian's ${missing[*]} for the metrics and deployment tests"
  $apt_get update -qq && DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "could not install ${missing[*]}; the tests that need them will fail" >&2
fi

results="$(pwd)/TestResults/run-$(date +%s)"
mkdir -p "$results"

dotnet test QService.sln -c Release --logger "trx" --results-directory "$results" "$@"
status=$?

# The Python client against the real server (its conftest starts the built host on the demo pair).
/usr/bin/python3 -m pytest -q -p no:cacheprovider clients/python/tests --junitxml="$results/python.xml" || status=1

passed=0; failed=0; skipped=0; files=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  files=$((files + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  get() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + $(get notExecuted)))
done

if [ -f "$results/python.xml" ]; then
  suite=$(grep -o '<testsuite [^>]*>' "$results/python.xml" | head -n 1)
  attr() { echo "$suite" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
  py_failed=$(( $(attr failures) + $(attr errors) ))
  passed=$((passed + $(attr tests) - py_failed - $(attr skipped)))
  failed=$((failed + py_failed))
  skipped=$((skipped + $(attr skipped)))
else
  echo "the Python client's tests wrote no results" >&2
  failed=$((failed + 1))
fi

if [ "$files" -eq 0 ]; then
  echo "no test results were written (build failure?)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then exit 1; fi
exit 0
