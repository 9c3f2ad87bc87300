#!/usr/bin/env bash
# Builds the documentation site (mdbook, book.toml → target/book) and opens every page in a
# real headless Chromium, served over loopback: each page's links to other pages must lead
# to a page that exists and, with an anchor, to an element of that id in the page as the
# browser built it; each image must exist; the search box, opened as `?search=replay`, must
# find pages. Keeps a screenshot of the front page in target/docs-front.png.
#
#   bash scripts/docs-check.sh
#
# Needs mdbook (cargo install mdbook --locked --no-default-features --features search),
# chromium and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
mdbook build >/dev/null
book=target/book
[ -s "$book/index.html" ] || { echo "mdbook wrote no $book/index.html" >&2; exit 1; }
work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$book" "$port" >"$work/http.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.05
done
# As the machine's own Chromium runs headless without a network: no background traffic.
browser() {
    timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$work/profile" "$@" 2>>"$work/chromium.log"
}
pages=$(cd "$book" && find . -name '*.html' ! -name print.html ! -name 404.html | sed 's|^\./||' | sort)
mkdir -p "$work/dom"
count=0
for page in $pages; do
    mkdir -p "$work/dom/$(dirname "$page")"
    browser --virtual-time-budget=2000 --dump-dom "http://127.0.0.1:$port/$page" >"$work/dom/$page"
    [ -s "$work/dom/$page" ] || { cat "$work/chromium.log" >&2; echo "Chromium showed nothing for $page" >&2; exit 1; }
    count=$((count + 1))
done
echo "opened $count pages in $(chromium --version 2>/dev/null)"
browser --virtual-time-budget=5000 --dump-dom "http://127.0.0.1:$port/index.html?search=replay" >"$work/search.html"
browser --window-size=1280,900 --screenshot="$PWD/target/docs-front.png" "http://127.0.0.1:$port/index.html" >/dev/null
[ -s target/docs-front.png ] || { echo "no screenshot of the front page" >&2; exit 1; }
echo "front page: target/docs-front.png"
python3 - "$book" "$work/dom" "$work/search.html" <<'PY'
import html.parser, os, sys, urllib.parse
book, doms, search = sys.argv[1:]

class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links, self.images, self.results = set(), [], [], 0
        self.in_results = 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if "name" in a and tag == "a":
            self.ids.add(a["name"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if a.get("id") == "mdbook-searchresults":
            self.in_results = 1
        elif self.in_results and tag == "li":
            self.results += 1

def parse(path):
    p = Page()
    with open(path, encoding="utf-8") as f:
        p.feed(f.read())
    return p

pages = {}
for root, _, files in os.walk(doms):
    for name in files:
        path = os.path.join(root, name)
        pages[os.path.relpath(path, doms)] = parse(path)
broken = []
for name, page in sorted(pages.items()):
    base = os.path.dirname(name)
    for href in page.links:
        url = urllib.parse.urlsplit(href)
        if url.scheme in ("http", "https", "mailto") or href.startswith("//"):
            continue
        target = os.path.normpath(os.path.join(base, urllib.parse.unquote(url.path))) if url.path else name
        if not os.path.exists(os.path.join(book, target)):
            broken.append(f"{name}: link {href}: no such file")
            continue
        if url.fragment and target.endswith(".html"):
            there = pages.get(target)
            if there is None:
                broken.append(f"{name}: link {href}: page not opened")
            elif url.fragment not in there.ids:
                broken.append(f"{name}: link {href}: no element #{url.fragment}")
    for src in page.images:
        url = urllib.parse.urlsplit(src)
        if url.scheme in ("http", "https", "data"):
            continue
        if not os.path.exists(os.path.join(book, os.path.normpath(os.path.join(base, url.path)))):
            broken.append(f"{name}: image {src}: no such file")
found = parse(search).results
print(f"checked {sum(len(p.links) for p in pages.values())} links and {sum(len(p.images) for p in pages.values())} images; the search for \"replay\" found {found} pages")
if found == 0:
    broken.append("the search box found nothing for \"replay\"")
if broken:
    print("\n".join(broken), file=sys.stderr)
    sys.exit(1)
PY
