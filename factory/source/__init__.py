"""Where packages come from: snapshot timestamps, the machine's apt sources, upstream
resolution (snapshot, recorded mirror, plain mirror) and control of the cache proxy."""
