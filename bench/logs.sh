#!/bin/sh
# The log shipping and aggregation benchmark (bench/logs), one minute.
exec go run ./bench/logs "$@"
