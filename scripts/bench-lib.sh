# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run).

# Prints the processes using >= 20 % CPU right now, as "name (pid N) P%, ...",
# or "unknown" without top. Uses top's second frame: the first one averages
# since each process started.
busy_processes() {
  command -v top >/dev/null || { echo unknown; return; }
  top -bn2 -d1 | awk '/^top -/{frame++} frame==2 && $1 ~ /^[0-9]+$/ && $9+0 >= 20 {print $1, $9}' |
    while read -r pid pcpu; do
      name=$(ps -o comm= -p "$pid" 2>/dev/null) || continue
      [[ $name == top ]] || printf '%s (pid %s) %s%%, ' "$name" "$pid" "$pcpu"
    done | sed 's/, $//'
}
