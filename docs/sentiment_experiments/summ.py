import json, sys
for fn in sys.argv[1:]:
    for line in open(fn):
        r = json.loads(line)
        if "summary" in r:
            for n, s in r["summary"].items():
                if n != "1000" and "--all" not in sys.argv: continue
                f = lambda k: f"{s[k][0]:+.3f} ({s[k][1]:+.3f}..{s[k][2]:+.3f})"
                pb = " ".join("-" if p is None else f"{p:.2f}" for p in s["p_better"])
                print(f"{r['name'][:34]:34s} n={n:>4} store {f('store')} prom {s['promoted']}/{s['of']} neu {f('store_neu_recall')} films {f('films')} pol {f('films_polacc')} tw {f('tweets')} pol {f('tweets_polacc')} fixed {s['fixed'][0]:.3f} P[{pb}]")
