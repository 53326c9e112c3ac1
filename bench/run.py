"""Runs every benchmark of BENCHMARKS.md and prints one table.

Called by `bench/run`, which builds the release binaries, installs the peer
tools and the Twilio SDK venv first. Each pair is measured side by side in
the same run, and reported as a ratio. Pass `--only NAME[,NAME]` to run some
measures (accuracy, scale, lag, prune-lag, status, oneshot, ingest, footprint).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
CANARY = os.path.join(TARGET, "release", "sms-canary")
BARE = os.path.join(TARGET, "release", "examples", "bare-axum")
SID = "AC00000000000000000000000000000000"
TOKEN = "mock-auth-token"
TO = "+15005550100"
FROM = "+15005550006"

rows = []  # (measure, figure, target, passed: bool | None)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 500:
                    return True
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def results(output):
    """The `RESULT key=value …` lines of a bench's output, as dicts."""
    found = []
    for line in output.splitlines():
        if line.startswith("RESULT "):
            found.append(dict(kv.split("=", 1) for kv in line.split()[1:]))
    return found


def cargo_bench(name, *args, env=None):
    cmd = ["cargo", "bench", "--locked", "--quiet", "--bench", name, "--"] + list(args)
    log("$ " + " ".join(cmd))
    out = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    sys.stderr.write(out.stdout)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-3000:])
    return results(out.stdout)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def probe_file(name, gateway, schedule="0 0 1 1 *"):
    return (
        f'name = "{name}"\ngateway = "{gateway}"\nreceiver = "inbox"\n'
        f'from = "{FROM}"\nto = "{TO}"\nschedule = "{schedule}"\n'
        'threshold = "5s"\ntimeout = "10s"\n'
    )


# --- accuracy ---------------------------------------------------------------


def accuracy():
    found = cargo_bench("roundtrip")
    seq = next((r for r in found if r["concurrency"] == "1"), None)
    if not seq:
        rows.append(("accuracy", "bench failed", "p99 <= 1 ms", False))
        return
    p99 = float(seq["err_p99_ms"])
    ok = int(seq["ok"]) == int(seq["runs"])
    rows.append(
        (
            "accuracy",
            f"p99 {p99:.3f} ms (p50 {float(seq['err_p50_ms']):.3f}, max {float(seq['err_max_ms']):.3f}; "
            f"{seq['ok']}/{seq['runs']} ok)",
            "p99 <= 1 ms",
            ok and p99 <= 1.0,
        )
    )


# --- scale and schedule lag (in-process daemon benches) ----------------------


def scale():
    found = cargo_bench("daemon", "scale")
    if not found:
        rows.append(("scale", "bench failed", "", False))
        return
    r = found[-1]
    probes, ok = int(r["probes"]), int(r["ok"])
    p99, rss = float(r["err_p99_ms"]), float(r["peak_rss_mb"])
    rows.append(
        (
            "scale",
            f"{ok}/{probes} ok, {r['in_flight_peak']} in flight at once; "
            f"accuracy p99 {p99:.2f} ms; peak RSS {rss:.0f} MB",
            "all complete; p99 <= 10 ms; RSS <= 200 MB",
            ok == probes and p99 <= 10 and rss <= 200,
        )
    )


def lag():
    found = cargo_bench("daemon", "lag")
    if not found:
        rows.append(("schedule lag", "bench failed", "", False))
        return
    r = found[-1]
    p99 = float(r["lag_p99_ms"])
    rows.append(
        (
            "schedule lag",
            f"p99 {p99:.1f} ms (p50 {float(r['lag_p50_ms']):.1f}, max {float(r['lag_max_ms']):.1f}; "
            f"{r['runs']} runs of {r['probes']} probes)",
            "p99 <= 50 ms",
            p99 <= 50,
        )
    )


def prune_lag():
    found = cargo_bench("daemon", "prune-lag")
    if not found:
        rows.append(("lag while pruning", "bench failed", "", False))
        return
    r = found[-1]
    p99 = float(r["lag_p99_ms"])
    rows.append(
        (
            "lag while pruning",
            f"p99 {p99:.1f} ms (p50 {float(r['lag_p50_ms']):.1f}, max {float(r['lag_max_ms']):.1f}; "
            f"{r['runs']} runs of {r['probes']} probes while 30 days of them were pruned)",
            "p99 <= 50 ms",
            p99 <= 50,
        )
    )


# --- the status page and history over a year-old store -----------------------


def status():
    found = cargo_bench("status")
    if not found:
        rows.append(("status page", "bench failed", "", False))
        return
    r = found[-1]
    overview, probe = float(r["overview_p99_ms"]), float(r["probe90_p99_ms"])
    history = float(r["history365_p99_ms"])
    rows.append(
        (
            "status page",
            f"overview p99 {overview:.1f} ms, probe page (90 d) p99 {probe:.1f} ms, "
            f"history --since 365d p99 {history:.0f} ms; {r['probes']} probes x {r['days']} d, "
            f"store {float(r['store_mb']):.0f} MB",
            "overview <= 50 ms; probe <= 100 ms; history <= 200 ms",
            overview <= 50 and probe <= 100 and history <= 200,
        )
    )


# --- one-shot: `check` vs the Twilio SDK -------------------------------------


def peak_rss_kb(cmd):
    """Peak RSS of one run of `cmd`, from the kernel's rusage of the child."""
    if os.access("/usr/bin/time", os.X_OK):
        out = subprocess.run(
            ["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True
        )
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
        return int(m.group(1)) if m and out.returncode == 0 else None
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    return usage.ru_maxrss if status == 0 else None


def private_peak_mb(cmd):
    """Peak anonymous (private) memory of one run, sampled from smaps_rollup:
    what the process itself allocated, without the shared, clean pages of
    its binary and libraries that peak RSS also counts."""
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/smaps_rollup") as f:
                m = re.search(r"^Anonymous:\s+(\d+)", f.read(), re.M)
            peak = max(peak, int(m.group(1)))
        except (OSError, AttributeError):
            pass
        time.sleep(0.0005)
    return peak / 1024


def oneshot(python, work):
    mock_port, hook_port = free_port(), free_port()
    base = f"http://127.0.0.1:{mock_port}"
    hook = f"http://127.0.0.1:{hook_port}/hooks/twilio/inbound/inbox"
    cfg = os.path.join(work, "oneshot", "config.toml")
    write(
        cfg,
        f'[canary]\nstate_dir = "state"\nlisten = "127.0.0.1:{hook_port}"\n\n'
        f'[gateways.mock]\nkind = "twilio"\naccount_sid = "{SID}"\nauth_token = "{TOKEN}"\n'
        f'base_url = "{base}"\n\n[receivers.inbox]\nkind = "webhook"\ngateway = "mock"\n',
    )
    write(os.path.join(work, "oneshot", "probes", "one.toml"), probe_file("one", "mock"))
    mock = subprocess.Popen(
        [CANARY, "mock-carrier", "--listen", f"127.0.0.1:{mock_port}", "--latency", "10ms",
         "--owned", f"{TO}={hook}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_http(base + "/_mock/messages"):
            rows.append(("one-shot", "mock carrier did not start", "", False))
            return
        rust = [CANARY, "--config", cfg, "check", "one"]
        py = [python, os.path.join(ROOT, "bench", "twilio_roundtrip.py"), base, SID, TOKEN,
              str(hook_port)]
        for cmd in (rust, py):
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                log(f"{cmd[0]} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
                rows.append(("one-shot", f"{os.path.basename(cmd[0])} failed", "", False))
                return
        export = os.path.join(work, "oneshot.json")
        if shutil.which("hyperfine"):
            cmd = ["hyperfine", "--style", "basic", "--warmup", "3", "--runs", "30",
                   "--export-json", export, "-n", "check", " ".join(rust),
                   "-n", "twilio-sdk", " ".join(py)]
            log("$ " + " ".join(cmd))
            subprocess.run(cmd, check=True, stdout=sys.stderr)
            with open(export) as f:
                res = {r["command"]: r for r in json.load(f)["results"]}
            t_rust, t_py = res["check"]["median"], res["twilio-sdk"]["median"]
        else:
            log("hyperfine missing: timing 30 alternating runs each")
            times = {"rust": [], "py": []}
            for _ in range(30):
                for key, cmd in (("rust", rust), ("py", py)):
                    t = time.monotonic()
                    subprocess.run(cmd, capture_output=True, check=True)
                    times[key].append(time.monotonic() - t)
            t_rust = sorted(times["rust"])[15]
            t_py = sorted(times["py"])[15]
        rss = {"rust": [], "py": []}
        for _ in range(5):
            rss["rust"].append(peak_rss_kb(rust))
            rss["py"].append(peak_rss_kb(py))
        if None in rss["rust"] + rss["py"]:
            rows.append(("one-shot", "a run failed under /usr/bin/time", "", False))
            return
        m_rust, m_py = max(rss["rust"]) / 1024, max(rss["py"]) / 1024
        a_rust = max(private_peak_mb(rust) for _ in range(3))
        a_py = max(private_peak_mb(py) for _ in range(3))
        speed, mem = t_py / t_rust, m_rust / m_py
        rows.append(
            (
                "one-shot",
                f"{speed:.1f}x faster wall (median {t_rust * 1e3:.0f} ms vs {t_py * 1e3:.0f} ms); "
                f"peak RSS {m_rust:.1f} MB vs {m_py:.1f} MB = {mem:.2f} "
                f"(private {a_rust:.1f} MB vs {a_py:.1f} MB = {a_rust / a_py:.2f})",
                ">= 10x faster; <= 1/4 RSS",
                speed >= 10 and mem <= 0.25,
            )
        )
    finally:
        mock.terminate()
        mock.wait()


# --- webhook ingest: signed Twilio webhooks vs a bare axum server -----------


def start_daemon(cfg, port):
    """Webhooks on `port`; /readyz and the rest on an admin port of its own."""
    admin = free_port()
    proc = subprocess.Popen(
        [CANARY, "--config", cfg, "daemon", "--listen", f"127.0.0.1:{port}",
         "--admin-listen", f"127.0.0.1:{admin}", "--no-preflight"],
        stdout=subprocess.DEVNULL, stderr=open(cfg + ".log", "w"),
    )
    if not wait_http(f"http://127.0.0.1:{admin}/readyz", timeout=60):
        proc.kill()
        raise RuntimeError("the daemon did not become ready; see " + cfg + ".log")
    return proc


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wrk(url, script, seconds):
    cmd = ["wrk", "-t2", "-c64", f"-d{seconds}s", "-s", script, url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return rps, int(bad.group(1)) if bad else 0, errors.group(1) if errors else ""


def ingest(python, work):
    if not shutil.which("wrk"):
        rows.append(("webhook ingest", "wrk not installed", ">= 50% of bare axum", None))
        return
    port, bare_port = free_port(), free_port()
    cfg = os.path.join(work, "ingest", "config.toml")
    write(
        cfg,
        '[canary]\nstate_dir = "state"\n\n'
        f'[gateways.twilio]\nkind = "twilio"\naccount_sid = "{SID}"\nauth_token = "{TOKEN}"\n'
        'base_url = "http://127.0.0.1:9"\n\n'
        '[receivers.inbox]\nkind = "webhook"\ngateway = "twilio"\n',
    )
    write(os.path.join(work, "ingest", "probes", "p.toml"), probe_file("p", "twilio"))
    url = f"http://127.0.0.1:{port}/hooks/twilio/inbound/inbox"
    params = {"AccountSid": SID, "MessageSid": "SM" + "0" * 32, "From": FROM, "To": TO,
              "Body": "sms-canary p abcdefghjk"}
    # The signature comes from Twilio's own SDK, not from our signing code.
    signature = subprocess.run(
        [python, "-c",
         "import sys,json; from twilio.request_validator import RequestValidator as V; "
         "print(V(sys.argv[1]).compute_signature(sys.argv[2], json.loads(sys.argv[3])))",
         TOKEN, url, json.dumps(params)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    body = urllib.parse.urlencode(params)
    script = os.path.join(work, "ingest", "post.lua")
    write(
        script,
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.headers["X-Twilio-Signature"] = {json.dumps(signature)}\n',
    )
    daemon = start_daemon(cfg, port)
    bare = subprocess.Popen([BARE, f"127.0.0.1:{bare_port}"], stdout=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{bare_port}/")
        req = urllib.request.Request(url, data=body.encode(), headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
        with urllib.request.urlopen(req, timeout=5) as r:
            if r.status != 200:
                raise RuntimeError(f"signed webhook got {r.status}")
        seconds = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
        # The same POST to a path the daemon has no route for (404) measures
        # its HTTP stack alone, to split the gap between stack and handler.
        stack_url = f"http://127.0.0.1:{port}/no-such-route"
        got = {"bare": [], "hook": [], "stack": []}
        for _ in range(3):  # alternate, so all see the same background load
            got["bare"].append(wrk(f"http://127.0.0.1:{bare_port}/", script, seconds))
            got["hook"].append(wrk(url, script, seconds))
            got["stack"].append(wrk(stack_url, script, seconds))
        log(f"wrk results (rps, non-2xx, socket errors): {got}")
        bad = sum(b for _, b, _ in got["hook"])
        bare_rps = sorted(r for r, _, _ in got["bare"])[1]
        hook_rps = sorted(r for r, _, _ in got["hook"])[1]
        stack_rps = sorted(r for r, _, _ in got["stack"])[1]
        ratio = hook_rps / bare_rps
        rows.append(
            (
                "webhook ingest",
                f"{ratio * 100:.0f}% ({hook_rps:,.0f} signed webhooks/s vs {bare_rps:,.0f} req/s bare; "
                f"daemon 404 route {stack_rps / bare_rps * 100:.0f}%; {bad} non-2xx)",
                ">= 50% of bare axum",
                ratio >= 0.5 and bad == 0,
            )
        )
    finally:
        bare.terminate()
        bare.wait()
        stop(daemon)


# --- daemon footprint ---------------------------------------------------------


def footprint(work):
    port = free_port()
    cfg = os.path.join(work, "footprint", "config.toml")
    write(
        cfg,
        '[canary]\nstate_dir = "state"\n\n[gateways.sandbox]\nkind = "mock"\n\n'
        '[receivers.inbox]\nkind = "webhook"\ngateway = "sandbox"\n',
    )
    # Yearly schedules: the daemon holds 100 probes but has nothing to run.
    for i in range(100):
        write(os.path.join(work, "footprint", "probes", f"p{i:03}.toml"),
              probe_file(f"p{i:03}", "sandbox"))
    daemon = start_daemon(cfg, port)
    try:
        time.sleep(3)
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu():
            fields = open(f"/proc/{daemon.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        seconds = int(os.environ.get("BENCH_IDLE_SECONDS", "30"))
        c0, t0 = cpu(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu(), time.monotonic()
        status = open(f"/proc/{daemon.pid}/status").read()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        pct = (c1 - c0) / (t1 - t0) * 100
        rows.append(
            (
                "daemon footprint",
                f"idle RSS {rss:.1f} MB with 100 probes; CPU {pct:.2f}% of a core over {seconds} s",
                "<= 30 MB; ~0% CPU",
                rss <= 30 and pct < 0.5,
            )
        )
    finally:
        stop(daemon)


def load():
    return open("/proc/loadavg").read().split()[:3]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", required=True, help="python of the venv with twilio")
    parser.add_argument(
        "--only", default="accuracy,scale,lag,prune-lag,status,oneshot,ingest,footprint"
    )
    args = parser.parse_args()
    only = args.only.split(",")
    before = load()
    with tempfile.TemporaryDirectory(prefix="sms-canary-bench-") as work:
        for name, run in [
            ("accuracy", accuracy),
            ("scale", scale),
            ("lag", lag),
            ("prune-lag", prune_lag),
            ("status", status),
            ("oneshot", lambda: oneshot(args.python, work)),
            ("ingest", lambda: ingest(args.python, work)),
            ("footprint", lambda: footprint(work)),
        ]:
            if name in only:
                log(f"== {name}")
                try:
                    run()
                except Exception as e:  # one broken measure must not hide the others
                    rows.append((name, f"error: {e}", "", False))
    after = load()
    widths = [max(len(str(r[i])) for r in rows + [("measure", "figure", "target")]) for i in range(3)]
    line = lambda a, b, c, d: f"| {a:<{widths[0]}} | {b:<{widths[1]}} | {c:<{widths[2]}} | {d:<4} |"
    print(line("measure", "figure", "target", "pass"))
    print(line("-" * widths[0], "-" * widths[1], "-" * widths[2], "----"))
    for measure, figure, target, passed in rows:
        print(line(measure, figure, target, {True: "pass", False: "FAIL", None: "n/a"}[passed]))
    print(f"\nmachine: {os.cpu_count()} cores; load average before {' '.join(before)}, after {' '.join(after)}")
    return 0 if all(r[3] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
