#!/bin/sh
# An uploader from spawn.py: takes 1-3 seconds, then reports success.
# UPLOAD_SECONDS overrides the random delay (the tests use it).
file="$1"
delay="${UPLOAD_SECONDS:-$(( $(od -An -N1 -tu1 /dev/urandom) % 3 + 1 ))}"
echo "uploading $file to bucket ${BUCKET:-photos} (${delay}s)"
sleep "$delay"
echo "uploaded $file"
