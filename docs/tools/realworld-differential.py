#!/usr/bin/env python3
"""`keepalived -t` against `vrrpd check` over a directory of real-world keepalived.conf files
(CONFIGS, default ./realworld; collect them yourself: they are other people's files and are
not in this repository). As root: each config runs in its own network namespace in which
every interface it names exists (veth), with each missing absolute script path replaced by a
stub under /run/rwstub (so that configs are judged, not the host); prints how often the exit
codes agree and writes the disagreements to OUT/diff.txt. Run from the repository root after
`cargo build`."""
import os, re, subprocess, glob, random
VRRPD = os.environ.get("VRRPD", "target/debug/vrrpd")
CONFIGS = os.environ.get("CONFIGS", "realworld")
OUT = os.environ.get("OUT", "/tmp/realworld-differential")
STUB = "/run/rwstub"
KW = r'(?:script|notify_master|notify_backup|notify_fault|notify_stop|notify|misc_path|notify_up|notify_down|notify_master_rx_lower_pri|notify_deleted|quorum_up|quorum_down)'
res = {}
diffs = []
os.makedirs(os.path.join(OUT, "cfg2"), exist_ok=True)
for f in sorted(glob.glob(os.path.join(CONFIGS, "*.conf"))):
    raw = open(f, "rb").read().decode("utf-8", "surrogateescape")
    def fix(m):
        path = m.group(2)
        if os.path.exists(path):
            return m.group(0)
        stub = STUB + path
        os.makedirs(os.path.dirname(stub), exist_ok=True)
        with open(stub, "w") as s:
            s.write("#!/bin/sh\nexit 0\n")
        os.chmod(stub, 0o755)
        return m.group(1) + stub
    text = re.sub(r'(\b' + KW + r'\s+["\']?)(/[^\s"\']+)', fix, raw)
    g = os.path.join(OUT, "cfg2") + "/" + os.path.basename(f)
    open(g, "wb").write(text.encode("utf-8", "surrogateescape"))
    ifs = set(re.findall(r'^\s*(?:interface|track_interface)\s+([A-Za-z0-9_.:-]+)', text, re.M))
    ifs |= set(re.findall(r'\bdev\s+([A-Za-z0-9_.:-]+)', text))
    for blk in re.findall(r'track_interface\s*\{([^}]*)\}', text):
        for line in blk.splitlines():
            w = line.split()
            if w and not w[0].startswith(('#', '!')):
                ifs.add(w[0])
    ifs |= {"eth0", "eth1"}
    ns = "rw2t%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns])
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"])
    for i in ifs:
        if len(i) > 15 or not re.match(r'^[A-Za-z0-9_.-]+$', i):
            continue
        subprocess.run(["ip", "-n", ns, "link", "add", i, "type", "veth", "peer", "name", "p%d" % random.randrange(10**6)], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "-n", ns, "link", "set", i, "up"], stderr=subprocess.DEVNULL)
    k = subprocess.run(["ip", "netns", "exec", ns, "timeout", "10", "keepalived", "-t", "-l", "-f", g], capture_output=True, cwd="/")
    v = subprocess.run(["ip", "netns", "exec", ns, "timeout", "10", VRRPD, "check", "-i", "lb01", "-f", g], capture_output=True)
    subprocess.run(["ip", "netns", "del", ns])
    kc, vc = k.returncode, v.returncode
    res.setdefault((kc, vc), []).append(os.path.basename(f))
    if kc != vc:
        kt = "\n".join(l for l in (k.stderr + k.stdout).decode(errors="replace").splitlines() if "Line" in l or "rror" in l)[:1500]
        diffs.append("=== %s: keepalived %d vrrpd %d\n%s\n--- vrrpd\n%s" % (os.path.basename(f), kc, vc, kt, (v.stdout + v.stderr).decode(errors="replace")[:1500]))
open(os.path.join(OUT, "diff.txt"), "w").write("\n".join(diffs))
for (kc, vc), fs in sorted(res.items(), key=lambda x: -len(x[1])):
    print(len(fs), "keepalived", kc, "vrrpd", vc)
acc = [x for (kc, vc), fs in res.items() if kc in (0, 6) for x in fs]
ok = [x for (kc, vc), fs in res.items() if kc in (0, 6) and vc == kc for x in fs]
print("keepalived accepts (0|6):", len(acc), " vrrpd the same:", len(ok))
