#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks that every tracked source file carries an SPDX licence tag in its first lines:
#   // SPDX-License-Identifier: MIT     (.hpp .cpp .h)
#   # SPDX-License-Identifier: MIT      (CMakeLists.txt .cmake .sh .py; after a #! line)
# Lists the files without one and exits 1; exits 0 when all have it.
# Usage: bash tools/check-spdx.sh [--fix]    (--fix: add the tag to the files that lack it)
set -euo pipefail
cd "$(dirname "$0")/.."
fix=0
[[ "${1:-}" == "--fix" ]] && fix=1

missing=()
while IFS= read -r -d '' file; do
  [[ -f $file ]] || continue  # deleted in the work tree but still tracked
  case $file in
    *.hpp | *.cpp | *.h) tag='// SPDX-License-Identifier: MIT' ;;
    *) tag='# SPDX-License-Identifier: MIT' ;;
  esac
  # The tag must be the first line, or the second after a shebang.
  if head -n 2 "$file" | grep -qxF "$tag"; then continue; fi
  if ((fix)); then
    if head -n 1 "$file" | grep -q '^#!'; then
      sed -i "1a $tag" "$file"
    else
      sed -i "1i $tag" "$file"
    fi
    echo "check-spdx: tagged $file"
  else
    missing+=("$file")
  fi
done < <(git ls-files -z -- '*.hpp' '*.cpp' '*.h' '*.cmake' '*CMakeLists.txt' '*.sh' '*.py')

if ((${#missing[@]})); then
  echo "check-spdx: ${#missing[@]} file(s) without an SPDX-License-Identifier line:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "check-spdx: every source file carries the SPDX tag"
