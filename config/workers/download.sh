#!/bin/sh
# A download from killingque.py: ten chunks, one every DOWNLOAD_CHUNK_SECONDS (default 4s,
# so a download lasts about 40 s: long enough to type the README's walkthrough; the
# tests set it short).
file="$1"
i=1
while [ "$i" -le 10 ]; do
  echo "$file: chunk $i of 10"
  sleep "${DOWNLOAD_CHUNK_SECONDS:-4}"
  i=$((i + 1))
done
echo "$file: download complete"
