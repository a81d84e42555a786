#!/usr/bin/env bash
# The man pages the packages ship: they render without warnings, and every
# flag a program's --help lists is documented in its page (so the pages
# follow the programs).
set -uo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/lib.sh"

BUILD=${BUILD:-$TOP/build}
command -v groff >/dev/null || t_skip_all "groff is not installed"

declare -A PAGE=([rethink-agent]=docs/man/rethink-agent.8 [rethink-domain]=docs/man/rethink-domain.8
	[rethinkctl]=docs/man/rethinkctl.1)

for page in "$TOP"/docs/man/*.[18]; do
	out=$(groff -ww -z -man -Tutf8 "$page" 2>&1)
	t_check "${page#"$TOP"/} renders without warnings${out:+: $out}" test -z "$out"
done

for prog in "${!PAGE[@]}"; do
	bin=$BUILD/$prog
	page=$TOP/${PAGE[$prog]}
	if [ ! -x "$bin" ]; then
		echo "# $prog is not built; its page is not checked against it"
		continue
	fi
	t_check "${PAGE[$prog]} exists for $prog" test -f "$page"
	[ -f "$page" ] || continue
	# The page as text, with roff's escaped hyphens plain.
	text=$(sed 's/\\-/-/g' "$page")
	missing=
	for flag in $("$bin" --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
		grep -qF -- "$flag" <<<"$text" || missing="$missing $flag"
	done
	t_check "${PAGE[$prog]} documents every flag of $prog --help${missing:+ (missing:$missing)}" \
		test -z "$missing"
	t_check "${PAGE[$prog]} names the version $prog --version prints" \
		grep -qF "$("$bin" --version | awk '{print $NF}')" "$page"
done

t_done
