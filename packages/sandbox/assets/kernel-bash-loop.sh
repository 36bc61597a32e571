# The loop of hutch's Bash kernel driver, sourced at the top level so that cells run there (their
# `declare` is global). Each cell is sourced from kernel-bash-cell.sh, so that its `return` ends
# only the cell. A cell that `continue`s is finished at the top of the loop; one that breaks out
# of it (`break 2`, an interrupt) ends up after the loop, which finishes it and sources the loop
# again.
while :; do
  if [[ -n $__hutch_cell ]]; then __hutch_finish 0; fi
  __hutch_read || break
  case $__hutch_type in
    execute)
      __hutch_cell=$__hutch_id
      __hutch_count=$((__hutch_count + 1))
      trap '__hutch_interrupted=1; break 1000' INT
      # The control pipes are closed while the cell runs: its commands cannot read or forge them.
      source "$__hutch_dir/kernel-bash-cell.sh" </dev/null 60<&- 61>&-
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
