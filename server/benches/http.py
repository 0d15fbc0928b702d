#!/usr/bin/env python3
"""HTTP benchmark of attendant-server: the endpoints clients hit most, side by side for builds.

Not a test: run it by hand and copy the tables into docs/benchmarks.md. It writes the fixture
OpenWrt mirror once (`attendant-e2e mirror`, any build of it: only the server is measured) and
serves it on loopback (`attendant-e2e serve`). Then, for each round and each server binary, it
starts `attendant-server serve` on that mirror (SQLite, one build worker) in a scratch directory,
builds two images (a two-package request and a LuCI-sized one of about 50 packages) so that POSTs
are cache hits, and measures every endpoint with wrk (Debian `wrk`) at each concurrency. Builds
alternate within a round, so a change in the machine's load hits both.

Each row gives requests/s, p50 and p99, and the rate as a share of `GET /api/v1/build/{hash}`
(the LuCI-sized finished build) measured by the same binary in the same round at the same
concurrency: the figure to compare across runs on a shared machine. HEAD is not measured with
wrk, which waits for the body a HEAD answer announces.

Also measured per binary: cold start of `attendant-server serve` on an empty data directory
(process start to the first answered request), and the resident memory of the server idle after
start and idle after the load.

    server/benches/http.py [--duration 5s] [--rounds 2] [--connections 16,64] \\
        [--e2e DIR] [--mirror DIR] [--only TEXT] \\
        [--label NAME=BINARY ...]   # default: target/release/attendant-server
    server/benches/http.py --profile OUT [--label NAME=BINARY]

`--e2e` names the directory holding `attendant-e2e` and `attendant-ib-helper` (default:
target/debug, else target/release). With --profile, each endpoint is instead put under load at
64 connections while `perf record` samples the server (DWARF call graphs: the release build
keeps its symbols), and scripts/flamegraph.py turns each recording into OUT/<endpoint>.svg.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# This file is called http.py: its directory, first on the path, would shadow the standard
# library's `http` package that urllib imports.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERSION, TARGET, PROFILE = "24.10.5", "x86/64", "generic"
# LuCI (luci-app-attendedsysupgrade) sends every installed package; a stock image with LuCI has
# about fifty.
LUCI_PACKAGES = 50
UNKNOWN_HASH = "ab" * 32


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", default="5s", help="wrk duration per row (default: 5s)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: 2)")
    parser.add_argument("--connections", default="16,64", help="wrk -c values (default: 16,64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default: 2)")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a server binary to measure (repeatable; default: target/release/attendant-server)",
    )
    parser.add_argument("--e2e", metavar="DIR", help="where attendant-e2e and attendant-ib-helper are")
    parser.add_argument(
        "--mirror",
        metavar="DIR",
        help="keep the fixture mirror in DIR and reuse it if there (writing it takes minutes)",
    )
    parser.add_argument("--profile", metavar="OUT", help="record flame graphs into OUT instead")
    parser.add_argument(
        "--only", metavar="TEXT", help="measure only the endpoints whose name contains TEXT"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    builds = [label.split("=", 1) for label in args.label] or [
        ("release", os.path.join(ROOT, "target", "release", "attendant-server"))
    ]
    connections = [int(c) for c in args.connections.split(",")]

    with Mirror(args.e2e, args.mirror) as mirror:
        if args.profile:
            profile(builds[0][1], mirror, args)
        else:
            measure(builds, mirror, connections, args)


def measure(builds, mirror, connections, args):
    rows, facts = [], []
    for round_number in range(1, args.rounds + 1):
        for name, directory in builds:
            load = os.getloadavg()[0]
            with Server(directory, mirror) as demo:
                idle_rss = demo.rss_mib()
                for c in connections:
                    for endpoint in demo.endpoints(args.only):
                        rps, p50, p99, non2xx = wrk(demo.base, c, args, endpoint)
                        rows.append((endpoint["name"], c, name, round_number, rps, p50, p99, non2xx))
                        print(f"# {name} r{round_number} c{c} {endpoint['name']}: {rps:,.0f}/s p99 {p99}", file=sys.stderr)
                time.sleep(2)
                loaded_rss = demo.rss_mib()
                sizes = demo.sizes()
            start_ms = cold_start(directory, mirror)
            facts.append((name, round_number, load, start_ms, idle_rss, loaded_rss, sizes))

    print("| endpoint | c | build | round | requests/s | p50 | p99 | share of GET build | non-2xx |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    reference = {
        (c, name, r): rps for (endpoint, c, name, r, rps, *_rest) in rows if endpoint == GET_BUILD
    }
    for endpoint, c, name, r, rps, p50, p99, non2xx in rows:
        share = rps / reference[(c, name, r)] if reference.get((c, name, r)) else 0
        print(f"| {endpoint} | {c} | {name} | {r} | {rps:,.0f} | {p50} | {p99} | {share:.0%} | {non2xx} |")
    print()
    print("| build | round | load average (1 min) at start | cold start | RSS idle after start | RSS idle after load | body bytes (identity / gzip / br) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for name, r, load, start_ms, idle, loaded, sizes in facts:
        print(f"| {name} | {r} | {load:.1f} | {start_ms:.0f} ms | {idle:.1f} MiB | {loaded:.1f} MiB | {sizes} |")


GET_BUILD = "GET build/{hash} (LuCI-sized, 200)"


class Mirror:
    """The fixture OpenWrt mirror, written once into a scratch directory and served on loopback."""

    def __init__(self, directory, keep=None):
        self.keep = keep
        candidates = [directory] if directory else [
            os.path.join(ROOT, "target", "debug"),
            os.path.join(ROOT, "target", "release"),
        ]
        for candidate in candidates:
            if os.path.isfile(os.path.join(candidate, "attendant-e2e")):
                self.tools = candidate
                break
        else:
            sys.exit(f"no attendant-e2e in {' or '.join(candidates)}: cargo build -p attendant-e2e --bins")

    def __enter__(self):
        self.scratch = self.keep or tempfile.mkdtemp(prefix="attendant-http-bench-mirror-")
        e2e = os.path.join(self.tools, "attendant-e2e")
        env = dict(os.environ, ATTENDANT_IB_HELPER=os.path.join(self.tools, "attendant-ib-helper"))
        if not os.path.isfile(os.path.join(self.scratch, "mirror.json")):
            subprocess.run([e2e, "mirror", self.scratch], env=env, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(self.scratch, "mirror.json")) as info:
            self.public_key = json.load(info)["public_key"]
        self.process = subprocess.Popen([e2e, "serve", self.scratch], stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            sys.exit(f"attendant-e2e serve printed {self.url!r}, not its address")
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()
        if not self.keep:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def config(self, data_dir, port, workers):
        """A server configuration file in `data_dir` for this mirror; its path."""
        os.makedirs(data_dir, exist_ok=True)
        path = os.path.join(data_dir, "attendant.toml")
        with open(path, "w") as config:
            config.write(f'listen = "127.0.0.1:{port}"\n')
            config.write(f"data_dir = {json.dumps(data_dir)}\n")
            config.write(f"upstream_url = {json.dumps(self.url)}\n")
            config.write(f"trusted_keys = [{json.dumps(self.public_key)}]\n")
            config.write(f"workers = {workers}\n")
        return path


class Server:
    """`attendant-server serve` on the fixture mirror in a scratch directory, with two finished builds."""

    def __init__(self, binary, mirror):
        self.binary = binary
        self.mirror = mirror
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.scratch = tempfile.mkdtemp(prefix="attendant-http-bench-")
        config = self.mirror.config(os.path.join(self.scratch, "data"), self.port, 1)
        self.process = subprocess.Popen(
            [self.binary, "--config", config, "serve"],
            cwd=self.scratch,
            env=dict(os.environ, RUST_LOG="warn"),
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.scratch, "serve.err"), "wb"),
        )
        deadline = time.monotonic() + 300
        while request(self.base + "/api/v1/stats")[0] != 200:
            if time.monotonic() > deadline or self.process.poll() is not None:
                sys.exit(open(os.path.join(self.scratch, "serve.err")).read())
            time.sleep(0.1)
        self.small = {"version": VERSION, "target": TARGET, "profile": PROFILE, "packages": ["tmux", "htop"]}
        self.luci = dict(self.small, packages=luci_packages(self.base), client="luci/git-24.10")
        self.small_hash = self.build(self.small)
        self.luci_hash = self.build(self.luci)
        return self

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def build(self, body):
        status, text, _ = request(self.base + "/api/v1/build", json.dumps(body).encode())
        request_hash = json.loads(text)["request_hash"]
        deadline = time.monotonic() + 300
        while status != 200:
            if status not in (200, 202) or time.monotonic() > deadline:
                sys.exit(f"build of {body} answered {status}: {text[:500]}")
            time.sleep(0.2)
            status, text, _ = request(f"{self.base}/api/v1/build/{request_hash}")
        return request_hash

    def endpoints(self, only=None):
        small = json.dumps(self.small)
        luci = json.dumps(self.luci)
        bad_target = json.dumps(dict(self.small, target="x86/none"))
        browser = {"Accept-Encoding": "gzip, deflate, br"}
        endpoints = [
            {"name": GET_BUILD, "method": "GET", "path": f"/api/v1/build/{self.luci_hash}"},
            {"name": "GET build/{hash} (LuCI-sized, br)", "method": "GET", "path": f"/api/v1/build/{self.luci_hash}", "headers": browser},
            {"name": "GET build/{hash} (2 packages)", "method": "GET", "path": f"/api/v1/build/{self.small_hash}"},
            {"name": "POST build, cached (2 packages)", "method": "POST", "path": "/api/v1/build", "body": small},
            {"name": "POST build, cached (LuCI, ~50 packages)", "method": "POST", "path": "/api/v1/build", "body": luci},
            {"name": "GET overview.json", "method": "GET", "path": "/json/v1/overview.json"},
            {"name": "GET overview.json (br)", "method": "GET", "path": "/json/v1/overview.json", "headers": browser},
            {"name": "GET build/{unknown} (404)", "method": "GET", "path": f"/api/v1/build/{UNKNOWN_HASH}"},
            {"name": "POST bad target (400)", "method": "POST", "path": "/api/v1/build", "body": bad_target},
        ]
        # The reference row is always measured: the shares are relative to it.
        return [e for e in endpoints if not only or only in e["name"] or e["name"] == GET_BUILD]

    def rss_mib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def sizes(self):
        out = []
        for encoding in ("identity", "gzip", "br"):
            _, _, raw = request(f"{self.base}/api/v1/build/{self.luci_hash}", headers={"Accept-Encoding": encoding})
            out.append(str(len(raw)))
        return " / ".join(out)


def profile(binary, mirror, args):
    os.makedirs(args.profile, exist_ok=True)
    flamegraph = os.path.join(ROOT, "scripts", "flamegraph.py")
    seconds = int(args.duration.rstrip("s"))
    with Server(binary, mirror) as demo:
        for endpoint in demo.endpoints(args.only):
            slug = "".join(c if c.isalnum() else "-" for c in endpoint["name"].lower()).strip("-")
            slug = "-".join(part for part in slug.split("-") if part)
            data = os.path.join(args.profile, slug + ".data")
            lua = write_script(endpoint)
            load = subprocess.Popen(
                ["wrk", "-t", str(args.threads), "-c", "64", "-d", f"{seconds + 2}s",
                 "-s", lua, demo.base + endpoint["path"]],
                stdout=subprocess.DEVNULL,
            )
            time.sleep(1)
            subprocess.run(
                ["perf", "record", "-q", "-F", "299", "--call-graph", "dwarf,16384", "-p",
                 str(demo.process.pid), "-o", data, "--", "sleep", str(seconds)],
                check=True, stderr=subprocess.DEVNULL,
            )
            load.wait()
            os.unlink(lua)
            script = subprocess.run(["perf", "script", "-i", data], capture_output=True, check=True)
            with open(os.path.join(args.profile, slug + ".svg"), "wb") as svg:
                subprocess.run(
                    [sys.executable, flamegraph, "--title", endpoint["name"] + ", 64 connections"],
                    input=script.stdout, stdout=svg, check=True,
                )
            with open(os.path.join(args.profile, slug + ".folded"), "wb") as folded:
                subprocess.run([sys.executable, flamegraph, "--folded"], input=script.stdout, stdout=folded, check=True)
            os.unlink(data)
            print(f"# {endpoint['name']}: {slug}.svg", file=sys.stderr)


def write_script(endpoint):
    """A wrk Lua script sending `endpoint`'s method, body and headers; the caller's to delete."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False, prefix="attendant-wrk-")
    with script:
        script.write(f'wrk.method = "{endpoint["method"]}"\n')
        if "body" in endpoint:
            script.write(f"wrk.body = [[{endpoint['body']}]]\n")
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
        for key, value in endpoint.get("headers", {}).items():
            script.write(f'wrk.headers["{key}"] = "{value}"\n')
    return script.name


def luci_packages(base):
    """About fifty installable package names: the profile's defaults, then others from the index."""
    _, text, _ = request(f"{base}/json/v1/releases/{VERSION}/targets/{TARGET}/{PROFILE}.json")
    profile = json.loads(text)
    names = list(dict.fromkeys(profile.get("default_packages", []) + profile.get("device_packages", [])))
    names = [name for name in names if not name.startswith("-")]
    _, text, _ = request(f"{base}/json/v1/releases/{VERSION}/targets/{TARGET}/index.json")
    index = json.loads(text).get("packages", {})
    for name in sorted(index):
        if len(names) >= LUCI_PACKAGES:
            break
        if name not in names and not name.startswith(("kmod-", "lib")):
            names.append(name)
    return names[:LUCI_PACKAGES]


def wrk(base, connections, args, endpoint):
    script = write_script(endpoint)
    try:
        out = subprocess.run(
            ["wrk", "-t", str(args.threads), "-c", str(connections), "-d", args.duration,
             "--latency", "-s", script, base + endpoint["path"]],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        os.unlink(script)
    rps, p50, p99, non2xx = 0.0, "", "", 0
    for line in out.splitlines():
        fields = line.split()
        if line.startswith("Requests/sec:"):
            rps = float(fields[1])
        elif fields[:1] == ["50%"]:
            p50 = fields[1]
        elif fields[:1] == ["99%"]:
            p99 = fields[1]
        elif "Non-2xx" in line:
            non2xx = int(fields[-1])
    return rps, p50, p99, non2xx


def cold_start(binary, mirror):
    """Milliseconds from starting `attendant-server serve` on an empty data directory to its first answer."""
    scratch = tempfile.mkdtemp(prefix="attendant-cold-start-")
    port = free_port()
    config = mirror.config(scratch, port, 0)
    started = time.monotonic()
    process = subprocess.Popen(
        [binary, "--config", config, "serve"],
        env=dict(os.environ, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while request(f"http://127.0.0.1:{port}/api/v1/stats")[0] != 200:
            if process.poll() is not None or time.monotonic() - started > 30:
                return float("nan")
            time.sleep(0.002)
        return (time.monotonic() - started) * 1000
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)


def request(url, body=None, headers=None):
    """(status, text, raw bytes); status 0 when nothing answers."""
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            raw = response.read()
            return response.status, raw.decode(errors="replace"), raw
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, raw.decode(errors="replace"), raw
    except OSError:
        return 0, "", b""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
