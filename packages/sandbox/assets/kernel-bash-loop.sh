# The loop of hutch's Bash kernel driver, sourced at the top level so that cells run there (their
# `declare` is global). A cell that breaks out of it (`break 2`, `return`, an interrupt) ends up
# after the loop, which finishes that cell and sources the loop again.
while __hutch_read; do
  if [[ -n $__hutch_cell ]]; then __hutch_finish 1; fi
  case $__hutch_type in
    execute)
      __hutch_cell=$__hutch_id
      __hutch_count=$((__hutch_count + 1))
      trap '__hutch_interrupted=1; break 1000' INT
      # The control pipes are closed while the cell runs: its commands cannot read or forge them.
      eval "$__hutch_payload" </dev/null 60<&- 61>&-
      __hutch_finish $?
      ;;
    snapshot) __hutch_snapshot "$__hutch_id" ;;
    restore) __hutch_restore "$__hutch_id" ;;
  esac
done
if [[ -n $__hutch_cell ]]; then
  __hutch_finish 130
  source "$__hutch_dir/kernel-bash-loop.sh"
fi
