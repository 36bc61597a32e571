eval "$__hutch_payload"
