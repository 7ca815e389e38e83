#!/bin/sh
# A backup worker from parallel_backups.py: copies a "source" in a few steps.
name="$1"; steps="${2:-3}"
i=1
while [ "$i" -le "$steps" ]; do
  echo "$SUPERVISOR_JOB: backing up $name, step $i of $steps"
  sleep "${BACKUP_STEP_SECONDS:-1}"
  i=$((i + 1))
done
echo "$SUPERVISOR_JOB: backup of $name complete"
