#!/usr/bin/env python3
"""Turns `routevpn plan --json` into the inputs a hand-made setup would use:
DIR/baseline.ip for `ip -batch`, DIR/baseline.sysctl for `sysctl -p`, DIR/baseline.nft
for `nft -f`. Same kernel objects, so the benchmark compares like with like."""
import json
import sys

plan = json.load(sys.stdin)
out_dir = sys.argv[1]
ip, sysctl = [], []

def addr(endpoint):
    # Endpoints serialize as {"address": "..."} (the benchmark never uses %defaultroute).
    return endpoint["address"] if isinstance(endpoint, dict) else endpoint

for t in plan["tunnels"]:
    link = t["link"]
    kind = link["kind"]
    name = link["name"]
    assert kind["type"] == "vti", "the benchmark plans VTI tunnels only"
    mark = kind["mark"]
    ip.append(f"link add {name} type vti local {addr(kind['local'])} remote {kind['remote']} ikey {mark} okey {mark}")
    ip.append(f"link set {name} mtu {link['mtu']} multicast {'on' if link['multicast'] else 'off'} up")
    for a in t["addresses"]:
        ip.append(f"address add {a['address']} dev {a['device']}")
    for r in t["routes"]:
        table = f" table {r['table']}" if r["table"] else ""
        if r["kind"] == "blackhole":
            ip.append(f"route add blackhole {r['to']} metric {r['metric']} proto {r['protocol']}{table}")
        else:
            src = f" src {r['src']}" if r["src"] else ""
            ip.append(f"route add {r['to']} dev {r['device']}{src} metric {r['metric']} proto {r['protocol']}{table}")
    for p in t["policies"]:
        src = p["src"]["prefix"]
        dst = p["dst"]["prefix"]
        tmpl = p["template"]
        ip.append(
            f"xfrm policy add src {src} dst {dst} dir {p['direction']} mark {p['mark']} mask 0xffffffff "
            f"priority {p['priority']} tmpl src {addr(tmpl['src'])} dst {addr(tmpl['dst'])} proto esp "
            f"reqid {tmpl['reqid']} mode {tmpl['mode']}"
        )
    for s in t["sysctls"]:
        sysctl.append(f"{s['key']} = {s['value']}")

with open(f"{out_dir}/baseline.ip", "w") as f:
    f.write("\n".join(ip) + "\n")
with open(f"{out_dir}/baseline.sysctl", "w") as f:
    f.write("\n".join(sysctl) + "\n")
with open(f"{out_dir}/baseline.nft", "w") as f:
    f.write(plan["nftables_script"])
