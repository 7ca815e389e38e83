#!/bin/sh
# A download from killingque.py: ten chunks, one every DOWNLOAD_CHUNK_SECONDS (default 0.5s).
file="$1"
i=1
while [ "$i" -le 10 ]; do
  echo "$file: chunk $i of 10"
  sleep "${DOWNLOAD_CHUNK_SECONDS:-0.5}"
  i=$((i + 1))
done
echo "$file: download complete"
