"""`rasa data validate`, failing on every warning but one kind that is expected here.

Rasa warns that a response "is not used in any story or rule" when only a custom
action or a form sends it. Those are allowed when the response really is sent
from `actions/` or is a form's `utter_ask_<slot>`; any other warning fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
UNUSED = re.compile(r"The utterance '(utter_\w+)' is not used in any story or rule")


def responses_sent_by_code() -> set[str]:
    sent = set()
    for path in (ROOT / "actions").glob("*.py"):
        sent |= set(re.findall(r"\"(utter_\w+)\"", path.read_text()))
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    for form in (domain.get("forms") or {}).values():
        sent |= {f"utter_ask_{slot}" for slot in form.get("required_slots", [])}
    return sent


def main() -> int:
    rasa = ROOT / ".venv-rasa" / "bin" / "rasa"
    proc = subprocess.run(
        [str(rasa), "data", "validate"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    output = proc.stdout + proc.stderr
    allowed = responses_sent_by_code()
    problems = []
    for line in output.splitlines():
        if "UserWarning" not in line and "ERROR" not in line:
            continue
        match = UNUSED.search(line)
        if match and match.group(1) in allowed:
            continue
        problems.append(line.strip())
    if proc.returncode != 0 or problems:
        print(output if proc.returncode != 0 else "\n".join(problems))
        print("rasa data validate: FAILED")
        return 1
    print("rasa data validate: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
