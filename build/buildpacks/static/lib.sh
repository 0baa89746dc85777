# static_root BUILD_DIR prints the directory to serve, relative to the app:
# static.json's "root", else public/ when there is no index.html at the
# top, else the app itself (".").
static_root() {
	local root=""
	if [ -f "$1/static.json" ]; then
		# A sed, not a JSON parser: the host may have no jq, node or
		# python, and "root" is a flat string.
		root=$(sed -n 's/.*"root"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$1/static.json" | head -n1)
	fi
	if [ -z "$root" ]; then
		if [ ! -f "$1/index.html" ] && [ -d "$1/public" ]; then root=public; else root=.; fi
	fi
	root=${root#./}
	root=${root%/}
	echo "${root:-.}"
}
