#!/usr/bin/env python3
"""Renders `perf script` output as a flame graph SVG (and the folded stacks), without installs.

The same picture as Brendan Gregg's flamegraph.pl or inferno
(https://github.com/brendangregg/FlameGraph, https://github.com/jonhoo/inferno), in a few lines
of Python, so that profiling the server needs nothing beyond Debian's `perf`:

    perf record -F 999 --call-graph dwarf -p "$(pidof attendant-e2e)" -- sleep 10
    perf script | scripts/flamegraph.py --title "GET /json/v1/overview.json" >flame.svg
    perf script | scripts/flamegraph.py --folded | sort -k2 -n -t' ' | tail   # hottest stacks

Each sample's stack (leaf last) is one path of the tree; a frame's width is its share of the
samples. Frames narrower than --min-width pixels are merged away, as flamegraph.pl does.
Hover a frame in a browser for its name, samples and share.
"""

import argparse
import html
import re
import sys
import zlib

WIDTH = 1200
FRAME_HEIGHT = 16
FONT_SIZE = 11
CHAR_WIDTH = FONT_SIZE * 0.59
# `perf script` frame lines: "<address> <symbol>+0x<offset> (<object>)".
FRAME = re.compile(r"^\s*[0-9a-f]+\s+(.+?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)\s*$")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--title", default="Flame graph", help="heading of the SVG")
    parser.add_argument("--folded", action="store_true", help="print folded stacks, not an SVG")
    parser.add_argument("--min-width", type=float, default=0.1, help="narrowest frame drawn, px")
    args = parser.parse_args()
    folded = fold(sys.stdin)
    if args.folded:
        for stack, count in sorted(folded.items()):
            print(f"{stack} {count}")
        return
    sys.stdout.write(render(folded, args.title, args.min_width))


def fold(lines):
    """{"comm;outer;...;leaf": samples} from `perf script` text."""
    folded = {}
    comm, frames = None, []

    def flush():
        if comm is not None:
            stack = ";".join([comm] + frames[::-1])
            folded[stack] = folded.get(stack, 0) + 1

    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            comm, frames = None, []
        elif not line[0].isspace():
            flush()
            # "<comm> <pid>[/<tid>] [cpu] <time>: ..." where comm may contain spaces.
            match = re.match(r"^(.*?)\s+\d+(?:/\d+)?\s", line)
            comm, frames = (match.group(1) if match else line.split()[0]), []
        else:
            match = FRAME.match(line)
            if match:
                symbol = match.group(1)
                if symbol == "[unknown]":
                    symbol = f"[{match.group(2).rsplit('/', 1)[-1]}]"
                frames.append(clean(symbol))
    flush()
    return folded


def clean(symbol):
    """A Rust symbol without its hash suffix (`::h0123456789abcdef`)."""
    return re.sub(r"::h[0-9a-f]{16}$", "", symbol).replace(";", ":")


def render(folded, title, min_width):
    tree = {"name": "all", "count": 0, "children": {}}
    for stack, count in folded.items():
        node = tree
        node["count"] += count
        for name in stack.split(";"):
            node = node["children"].setdefault(name, {"name": name, "count": 0, "children": {}})
            node["count"] += count
    total = max(tree["count"], 1)
    scale = (WIDTH - 20) / total
    rects, depth_max = [], 0

    def walk(node, x, depth):
        nonlocal depth_max
        width = node["count"] * scale
        if width < min_width:
            return
        depth_max = max(depth_max, depth)
        rects.append((node, x, depth, width))
        child_x = x
        for child in sorted(node["children"].values(), key=lambda child: child["name"]):
            walk(child, child_x, depth + 1)
            child_x += child["count"] * scale

    walk(tree, 10, 0)
    height = (depth_max + 1) * FRAME_HEIGHT + 60
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="Verdana, sans-serif" font-size="{FONT_SIZE}">',
        f'<rect width="100%" height="100%" fill="#f8f8f8"/>',
        f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="16">{html.escape(title)}</text>',
        f'<text x="10" y="{height - 10}">{total} samples; width is the share of samples, '
        "the stack grows upwards; hover for details</text>",
    ]
    for node, x, depth, width in rects:
        y = height - 40 - (depth + 1) * FRAME_HEIGHT
        share = node["count"] / total
        name = html.escape(node["name"])
        out.append(
            f'<g><title>{name} ({node["count"]} samples, {share:.2%})</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{width:.2f}" height="{FRAME_HEIGHT - 1}" '
            f'fill="{colour(node["name"])}" rx="2"/>'
        )
        fits = int((width - 6) / CHAR_WIDTH)
        if fits >= 3:
            label = node["name"] if len(node["name"]) <= fits else node["name"][: fits - 2] + ".."
            out.append(f'<text x="{x + 3:.2f}" y="{y + FRAME_HEIGHT - 4}">{html.escape(label)}</text>')
        out.append("</g>")
    out.append("</svg>\n")
    return "\n".join(out)


def colour(name):
    """Warm colours, stable per name, as flamegraph.pl's default palette."""
    h = zlib.crc32(name.encode())
    return f"rgb({205 + h % 50},{(h >> 8) % 180},{(h >> 16) % 55})"


if __name__ == "__main__":
    main()
