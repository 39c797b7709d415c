#!/usr/bin/env bash
# `timed.sh NAME COMMAND...`: runs COMMAND (leading VAR=value words are its environment, as in a Makefile
# recipe) and then prints "NAME took N s" on stderr, also when it fails; exits with COMMAND's status.
set -uo pipefail
name=$1
shift
started=$SECONDS
env "$@"
status=$?
echo "$name took $((SECONDS - started)) s" >&2
exit $status
