#!/usr/bin/env bash
# Bad input to the examples (RELIABILITY.md, "Bad input"): each line below runs an example
# with an invalid argument and expects exit status 2 (usage) within 20 s, with the argument's
# name in the message: never a panic (101), a hang (124) or a silent run. Needs the debug
# examples built (`cargo build --examples`; .ci/run does it first). Usage: scripts/bad_args.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# name-that-must-appear | example and arguments
cases='
--bogus|hello --fast --bogus
--tasks|chapter5 --fast --tasks 9
--tasks|chapter5 --fast --tasks -1
ITEMS|task1_order_processing --fast -5 4
ITEMS|task1_order_processing --fast 99999999999999999999 1
ITEMS|task1_order_processing --fast 1000000000 1
PREVIOUS_ORDERS|task1_order_processing --fast 1 -1
--seed|task2_smart_home --fast --seed -1
--seed|chat_messages --fast --seed x
--jobs|memory_walkthrough --fast --jobs 0
--jobs|memory_walkthrough --fast --jobs -3
--jobs|memory_walkthrough --fast --jobs 100000000
duration|memory_walkthrough --fast --durations -1
duration|memory_walkthrough --fast --durations 1e300
--workers|task4_image_processing --fast --workers 0
--workers|task4_image_processing --fast --workers 100000
--images|task4_image_processing --fast --images -1
--images|task4_image_processing --fast --images 1000000000
--scale|task4_image_processing --fast --scale 0
--rounds|task4_image_processing --fast --rounds 0
--connections|echo_server --fast --connections -1
--connections|echo_client --fast --connections 0
--port|echo_server --fast --port 99999
--size|echo_client --fast --size 0
--requests|echo_client --fast --requests -1
--port|weather_client --fast --port 70000
--delay|weather_client --delay inf
--delay|weather_client --delay nan
--delay|weather_compare --delay 1e300
--delay|weather_async_server --delay -1
--delay|weather_sync_server --delay inf
--users|chat_server --fast --users 0
--port|chat_client --fast --port abc
--bogus|pool_bench --bogus
'
fails=0
runs=0
while IFS='|' read -r want cmd; do
  [ -z "$cmd" ] && continue
  runs=$((runs + 1))
  name="${cmd%% *}"
  # shellcheck disable=SC2086
  timeout 20 "target/debug/examples/$name" ${cmd#"$name"} > /dev/null 2> target/bad_args.err
  rc=$?
  if [ "$rc" -ne 2 ] || ! grep -qF -- "$want" target/bad_args.err; then
    echo "FAILED (status $rc, wanted 2 naming $want): $cmd"; head -5 target/bad_args.err
    fails=$((fails + 1))
  fi
done <<< "$cases"
echo "bad arguments: $((runs - fails)) of $runs rejected cleanly"
[ "$fails" -eq 0 ]
