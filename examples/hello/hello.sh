#!/bin/sh
cat "$GREETING_FILE"
cat /app/shout.txt
