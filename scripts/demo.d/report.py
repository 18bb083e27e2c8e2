#!/usr/bin/python3
"""The demo's view of the dashboard's JSON (GET /api/state of the controller's dashboard).

  report.py live  URL [ONLY]          one short line per VM: what it does now and what it has bought
  report.py final URL OUT_DIR [LEDGER_JSON [ONLY]]
                                      OUT_DIR/report.txt (per VM: KPIs before vs after, purchases),
                                      OUT_DIR/history.csv, OUT_DIR/prices.csv and OUT_DIR/demo.png (gnuplot)

ONLY: keep only VMs whose name starts with it (the demo's prefix; other VMs on the host are left out).
Standard library only (Debian's /usr/bin/python3); the plot is drawn by gnuplot (Debian gnuplot-nox).
"""
import json
import os
import subprocess
import sys
import urllib.request


def fetch(url, only=None):
    with urllib.request.urlopen(url.rstrip("/") + "/api/state", timeout=5) as r:
        s = json.load(r)
    if only:
        s["vms"] = [v for v in s["vms"] if (v["name"] or "").startswith(only)]
        uuids = {v["uuid"] for v in s["vms"]}
        s["allocations"] = [a for a in s["allocations"] if a["vm_uuid"] in uuids]
    return s


def rate(b):
    units = ["B/s", "KiB/s", "MiB/s", "GiB/s"]
    i = 0
    while b >= 1024 and i < 3:
        b /= 1024
        i += 1
    return f"{b:.1f} {units[i]}" if i else f"{b:.0f} {units[i]}"


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def bought(state, uuid):
    return ", ".join(f"{a['resource']} +{a['quantity']} @{a['price']}" for a in state["allocations"] if a["vm_uuid"] == uuid)


def live(url, only=None):
    s = fetch(url, only)
    for v in s["vms"]:
        k = v.get("latest")
        if not k:
            print(f"  {v['name'] or v['uuid']:<14} (no KPIs yet)")
            continue
        flag = "  <- waiting for CPU" if k["runq_wait_pct"] > 20 else ""
        b = bought(s, v["uuid"])
        print(f"  {v['name'] or v['uuid']:<14} cpu {k['cpu_pct']:5.1f} %   run-queue wait {k['runq_wait_pct']:5.1f} %"
              f"   bought: {b or '-'}{flag}")
    prices = [p for p in s["prices"] if p.get("latest")]
    if prices:
        print("  prices: " + ", ".join(f"{p['book']} {p['latest']['price']}" for p in prices[:6]))


def window(v, key, first, seconds):
    t, ys = v["kpis"]["t"], v["kpis"][key]
    if not t:
        return []
    if first:
        return [y for x, y in zip(t, ys) if x <= t[0] + seconds]
    return [y for x, y in zip(t, ys) if x >= t[-1] - seconds]


def final(url, out, ledger_path=None, only=None):
    s = fetch(url, only)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "state.json"), "w") as f:
        json.dump(s, f)
    t0 = min((v["kpis"]["t"][0] for v in s["vms"] if v["kpis"]["t"]), default=0)
    names = [v["name"] or v["uuid"] for v in s["vms"]]

    # history.csv: one block per VM (gnuplot "index"), t relative to the start, KPIs and CPU bought.
    with open(os.path.join(out, "history.csv"), "w") as f:
        for v in s["vms"]:
            f.write(f"# {v['name']}\n# t cpu_pct runq_wait_pct disk_read_Bps disk_write_Bps net_rx_Bps net_tx_Bps\n")
            k = v["kpis"]
            for i, t in enumerate(k["t"]):
                f.write(f"{t - t0:.1f} {k['cpu_pct'][i]:.2f} {k['runq_wait_pct'][i]:.2f} {k['disk_read_Bps'][i]:.0f} "
                        f"{k['disk_write_Bps'][i]:.0f} {k['net_rx_Bps'][i]:.0f} {k['net_tx_Bps'][i]:.0f}\n")
            f.write("\n\n")
    with open(os.path.join(out, "allocations.csv"), "w") as f:
        for v in s["vms"]:
            f.write(f"# {v['name']} cpu millicores bought\n")
            a = v["allocated"].get("cpu", {"t": [], "quantity": []})
            f.write("0.0 0\n")
            for t, q in zip(a["t"], a["quantity"]):
                f.write(f"{max(0.0, t - t0):.1f} {q}\n")
            f.write(f"{(s['updated'] or t0) - t0:.1f} {a['quantity'][-1] if a['quantity'] else 0}\n\n\n")
    books = [p for p in s["prices"] if p["t"]]
    with open(os.path.join(out, "prices.csv"), "w") as f:
        for p in books:
            f.write(f"# {p['book']}\n")
            for t, y in zip(p["t"], p["price"]):
                f.write(f"{t - t0:.1f} {y}\n")
            f.write("\n\n")

    ledger = []
    if ledger_path and os.path.exists(ledger_path):
        try:
            with open(ledger_path) as f:
                ledger = json.load(f)
            if isinstance(ledger, dict):
                ledger = ledger.get("entries", [])
        except (ValueError, OSError):
            ledger = []

    lines = ["Morph demo report", "=================", ""]
    lines.append("Per VM: mean over the first and the last 30 s of the run.")
    lines.append("Run-queue wait = share of the VM's runnable time spent waiting for a host CPU (lower is better).")
    lines.append("")
    lines.append(f"{'VM':<16} {'owner':<10} {'CPU % before':>12} {'after':>7} {'wait % before':>14} {'after':>7}  bought now")
    for v in s["vms"]:
        cb, ca = mean(window(v, "cpu_pct", True, 30)), mean(window(v, "cpu_pct", False, 30))
        wb, wa = mean(window(v, "runq_wait_pct", True, 30)), mean(window(v, "runq_wait_pct", False, 30))
        lines.append(f"{v['name'] or v['uuid']:<16} {v['owner']:<10} {cb:12.1f} {ca:7.1f} {wb:14.1f} {wa:7.1f}  "
                     f"{bought(s, v['uuid']) or '-'}")
    lines.append("")
    lines.append("What was bought (allocation changes seen on the events stream, CPU millicores above baseline):")
    any_alloc = False
    for v in s["vms"]:
        for res, a in v["allocated"].items():
            steps = [f"t={t - t0:.0f}s: {q}" for t, q in zip(a["t"], a["quantity"])]
            if steps:
                any_alloc = True
                lines.append(f"  {v['name']:<16} {res}: " + ", ".join(steps[-12:]))
    if not any_alloc:
        lines.append("  nothing: no allocation was made during the run")
    lines.append("")
    if books:
        lines.append("Prices (µcredits per unit-second): min / max / last per book")
        for p in books:
            lines.append(f"  {p['book']:<40} {min(p['price'])} / {max(p['price'])} / {p['price'][-1]}")
    else:
        lines.append("Prices: none published during the run")
    lines.append("")
    if ledger:
        charges = {}
        for e in ledger:
            if e.get("kind") == "charge":
                charges[e.get("account", "?")] = charges.get(e.get("account", "?"), 0) + abs(int(e.get("amount_ucredits", 0)))
        lines.append("Ledger (morphctl ledger show --json): charges per account, µcredits")
        for acct, amt in sorted(charges.items()):
            lines.append(f"  {acct:<16} {amt}")
        if not charges:
            lines.append("  no charges recorded")
    else:
        lines.append("Ledger: not available (morphctl ledger show --json failed or is not there yet)")
    if s["shifts"]:
        lines.append("")
        lines.append("Last shifts applied by the agent:")
        for x in s["shifts"][-8:]:
            lines.append(f"  t={x['t'] - t0:5.0f}s {x['vm']:<16} {x['phase']:<8} {x['adjustments']} {x['error']}")
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    # demo.png: CPU %, run-queue wait %, CPU bought, prices over time.
    def series(file, col, titles, style):
        if not titles:
            return "plot [0:1] [0:1] -1 notitle"
        parts = []
        for i, title in enumerate(titles):
            parts.append("'%s' index %d using 1:%d with %s lw 2 title \"%s\"" % (file, i, col, style, title.replace('"', "'")))
        return "plot " + ", ".join(parts)
    hist, allocs, prices = (os.path.join(out, f) for f in ("history.csv", "allocations.csv", "prices.csv"))
    gp = [
        "set terminal pngcairo size 1200,1000 font 'sans,10'",
        "set output '%s'" % os.path.join(out, "demo.png"),
        "set multiplot layout 4,1 title 'Morph demo: KPIs, allocations and prices over time'",
        "set termoption noenhanced", "set grid", "set key outside right", "set xlabel 'seconds since start'",
        "set xrange [0:%d]" % max(1, int((s["updated"] or t0) - t0 + 1)),
        "set ylabel 'CPU %'", series(hist, 2, names, "lines"),
        "set ylabel 'run-queue wait %'", series(hist, 3, names, "lines"),
        "set ylabel 'CPU bought (mc)'", series(allocs, 2, names, "steps"),
        "set ylabel 'price (µcr)'",
    ]
    if not books:
        gp.append("set label 1 'no prices were published' at graph 0.4, graph 0.5")
    gp += [series(prices, 2, [p["book"] for p in books], "steps"), "unset multiplot"]
    with open(os.path.join(out, "demo.gp"), "w") as f:
        f.write("\n".join(gp) + "\n")
    r = subprocess.run(["gnuplot", os.path.join(out, "demo.gp")], capture_output=True, text=True)
    if r.returncode != 0:
        print("report: gnuplot failed: " + r.stderr.strip(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "live":
        live(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
        sys.exit(0)
    if len(sys.argv) >= 4 and sys.argv[1] == "final":
        sys.exit(final(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None,
                       sys.argv[5] if len(sys.argv) > 5 else None))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
