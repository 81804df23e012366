"""The report's stylesheet, inlined into every page (no external assets)."""

from __future__ import annotations

from factory.report.svg import VERDICT_COLOURS

_BASE = """
:root { --fg: #1d2330; --muted: #5d6675; --line: #dde2ea; --bg: #f6f7f9; --card: #fff;
  --accent: #2b4c7e; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 0 24px 48px; }
header.top { background: #1f2a3c; color: #fff; padding: 22px 0 20px; margin-bottom: 22px; }
header.top .inner { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header.top h1 { margin: 0; font-size: 26px; letter-spacing: .2px; }
header.top p { margin: 4px 0 0; color: #c6cfdd; }
header.top a { color: #c6cfdd; }
h2 { font-size: 19px; margin: 0; }
h3 { font-size: 14px; margin: 18px 0 8px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .6px; }
a { color: var(--accent); }
code, .mono { font: 12.5px/1.4 "DejaVu Sans Mono", ui-monospace, monospace; }
.tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: 14px; margin-bottom: 18px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 16px; }
.tile .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
.tile .v { font-size: 28px; font-weight: 650; margin-top: 2px; }
.tile .s { color: var(--muted); font-size: 12.5px; word-break: break-all; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; color: var(--muted); font-size: 12.5px;
  margin: 6px 0 16px; align-items: center; }
.sw { display: inline-block; width: 12px; height: 12px; border-radius: 3px;
  vertical-align: -1px; margin-right: 5px; }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%;
  border: 2px solid #fff; box-shadow: 0 0 0 1px #aab; vertical-align: -1px; margin-right: 5px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 18px 18px; margin-bottom: 18px; }
.card-head { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
.card-head .rate { color: var(--muted); font-size: 13px; }
.card-head .more { margin-left: auto; font-size: 13px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
  font-weight: 600; color: #fff; white-space: nowrap; }
.badge.plain { background: #eef1f5; color: var(--fg); font-weight: 500; }
.scroll { overflow-x: auto; }
svg text.axis { font: 11px "DejaVu Sans", sans-serif; fill: #6b7482; }
svg text.arch { font-weight: 600; fill: #3a4250; }
svg line.grid { stroke: #e8ebf0; stroke-width: 1; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 22px; }
.charts figure { margin: 0; }
.charts figcaption { font-size: 12.5px; color: var(--muted); margin-bottom: 2px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #edf0f4;
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; background: #fafbfc; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.nw { white-space: nowrap; }
td.msg { color: #7a2e2e; max-width: 420px; word-break: break-word; }
.changes { display: grid; grid-template-columns: 170px 1fr; gap: 6px 14px; font-size: 13px; }
.changes .when { color: var(--muted); }
.changes ul { list-style: none; margin: 0; padding: 0; }
.changes li { padding: 1px 0; }
.ck { display: inline-block; width: 18px; font-weight: 700; text-align: center; }
.ck.added { color: #2e9d4a; } .ck.removed { color: #d33a3a; }
.ck.upgraded { color: #3867d6; } .ck.downgraded { color: #b06a00; }
.muted { color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 0;
  font-size: 13px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-all; }
.latest { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 14px; }
.latest > div { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
ul.plain { list-style: none; margin: 0; padding: 0; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 28px; }
@media (max-width: 860px) { .tiles { grid-template-columns: repeat(2, 1fr); } }
"""


def stylesheet() -> str:
    badges = "".join(
        f".v-{name} {{ background: {colour}; }}\n" for name, colour in VERDICT_COLOURS.items()
    )
    return _BASE + badges
