#!/bin/bash
# instruction histogram of functions matching $2 in asm $1
awk -v pat="$2" '/^[0-9a-f]+ </{on = index($0, pat) > 0; if (on) print "## " substr($0, 1, 150); next} on && NF>1 {print $2}' $1 | awk '/^##/{if (h) {for (k in c) printf "%s:%d ", k, c[k]; print ""}; print; delete c; h=1; next} {c[$1]++} END {for (k in c) printf "%s:%d ", k, c[k]; print ""}'
