"""The batch-level summary: ``OUT/summary.html`` (self-contained) and ``OUT/summary.json``.

Per source: status, frames, faces, engagement and the share of faces per emotion (see
:mod:`affectlens.batch.stats` for the definitions), each row linking to the item's own report;
then a table of the items that failed, were unreadable or only partly decoded, with their errors.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Sequence

from affectlens import __version__
from affectlens.image_run import RESPONSIBLE_USE
from affectlens.labels import emotion_color

_OK = ("done", "partial")


def _e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def batch_summary(entries: Sequence[dict], labels: Sequence[str], totals: dict) -> dict:
    """JSON-ready batch summary from the manifest entries of this batch's items."""
    ok = [e for e in entries if e.get("status") in _OK]
    faces = sum(int(e.get("faces") or 0) for e in ok)
    shares = {k: 0.0 for k in labels}
    for e in ok:  # all faces of the batch pooled: each item weighs by its face count
        for k, v in ((e.get("stats") or {}).get("shares") or {}).items():
            shares[k] = shares.get(k, 0.0) + v * int(e.get("faces") or 0)
    return {"affectlens_version": __version__, "notice": RESPONSIBLE_USE, "labels": list(labels),
            "items": len(entries), "done": sum(e["status"] == "done" for e in entries),
            "partial": sum(e["status"] == "partial" for e in entries),
            "invalid": sum(e["status"] == "invalid" for e in entries),
            "failed": sum(e["status"] == "failed" for e in entries),
            "frames": sum(int(e.get("frames") or 0) for e in ok), "faces": faces,
            "shares": {k: (v / faces if faces else 0.0) for k, v in shares.items()},
            "subjects": per_subject(entries, labels), "run": totals}


def _share_bar(shares: dict, labels: Sequence[str]) -> str:
    cells = "".join(f'<span title="{_e(k)} {100 * shares.get(k, 0):.1f}%" style="width:{100 * shares.get(k, 0):.2f}%;'
                    f'background:{emotion_color(k)}"></span>' for k in labels if shares.get(k, 0) > 0)
    return f'<div class="bar">{cells}</div>'


def _source_rows(entries: Sequence[dict], labels: Sequence[str], out_dir: Path) -> str:
    rows = []
    for e in entries:
        if e.get("status") not in _OK:
            continue
        st = e.get("stats") or {}
        outs = e.get("outputs") or {}
        link = outs.get("report") or outs.get("faces_json")
        name = _e(Path(e["path"]).name)
        if link:
            name = f'<a href="{_e(os.path.relpath(link, out_dir))}">{name}</a>'
        eng = st.get("engagement")
        top = max(labels, key=lambda k: (st.get("shares") or {}).get(k, 0)) if e.get("faces") else "–"
        rows.append(f"<tr><td>{name}</td><td>{_e(e['kind'])}</td><td>{_e(e.get('subject'))}</td>"
                    f"<td>{_e(e.get('session'))}</td><td>{_e(e['status'])}</td><td class=n>{e.get('frames') or 0}</td>"
                    f"<td class=n>{e.get('faces') or 0}</td><td class=n>{'–' if eng is None else f'{eng:.2f}'}</td>"
                    f"<td>{_e(top)}</td><td>{_share_bar(st.get('shares') or {}, labels)}</td></tr>")
    return "\n".join(rows)


def per_subject(entries: Sequence[dict], labels: Sequence[str]) -> list[dict]:
    """Per subject of the manifest CSV (items without one are left out): items, faces, the
    emotion shares of all their faces pooled, and engagement averaged over items weighted by faces."""
    groups: dict[str, list[dict]] = {}
    for e in entries:
        if e.get("subject") and e.get("status") in _OK:
            groups.setdefault(e["subject"], []).append(e)
    out = []
    for subject, es in sorted(groups.items()):
        faces = sum(int(e.get("faces") or 0) for e in es)
        shares = {k: sum(((e.get("stats") or {}).get("shares") or {}).get(k, 0.0) * int(e.get("faces") or 0)
                         for e in es) / faces if faces else 0.0 for k in labels}
        eng = [(e["stats"]["engagement"], int(e.get("faces") or 0)) for e in es
               if (e.get("stats") or {}).get("engagement") is not None and e.get("faces")]
        w = sum(n for _, n in eng)
        out.append({"subject": subject, "items": len(es), "faces": faces, "shares": shares,
                    "engagement": round(sum(v * n for v, n in eng) / w, 4) if w else None})
    return out


def _subject_rows(subjects: Sequence[dict], labels: Sequence[str]) -> str:
    if not subjects:
        return ""
    rows = "\n".join(
        f"<tr><td>{_e(s['subject'])}</td><td class=n>{s['items']}</td><td class=n>{s['faces']}</td>"
        f"<td class=n>{'–' if s['engagement'] is None else format(s['engagement'], '.2f')}</td>"
        f"<td>{_share_bar(s['shares'], labels)}</td></tr>" for s in subjects)
    return ("<h2>Per subject</h2><p>Subjects as given in the manifest CSV; all faces of a subject's items "
            "pooled.</p><table><tr><th>subject</th><th>items</th><th>faces</th><th>engagement</th>"
            f"<th>emotion shares</th></tr>\n{rows}\n</table>")


def _failed_rows(entries: Sequence[dict]) -> str:
    rows = [f"<tr><td>{_e(e['path'])}</td><td>{_e(e['status'])}</td><td class=n>{_e(e.get('attempts'))}</td>"
            f"<td>{_e(e.get('error'))}</td></tr>" for e in entries if e.get("status") != "done"]
    return "\n".join(rows) or '<tr><td colspan=4>none</td></tr>'


_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;width:100%;margin:1em 0}td,th{border-bottom:1px solid #ddd;padding:4px 6px;
text-align:left;vertical-align:middle}td.n{text-align:right}.bar{display:flex;width:220px;height:12px;
background:#eee}.bar span{display:block;height:100%}.legend span{display:inline-block;margin-right:1em}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}.notice{background:#fff8e1;padding:.6em 1em}"""


def render_summary_html(entries: Sequence[dict], labels: Sequence[str], summary: dict, out_dir: Path) -> str:
    """The summary page as one HTML string (loads nothing from outside; all data text escaped)."""
    legend = "".join(f'<span><i style="background:{emotion_color(k)}"></i>{_e(k)}</span>' for k in labels)
    run = summary.get("run") or {}
    facts = (f"{summary['items']} items: {summary['done']} done, {summary['partial']} partly decoded, "
             f"{summary['invalid']} unreadable, {summary['failed']} failed; {summary['frames']} frames, "
             f"{summary['faces']} faces. This run: {_e(run.get('engine'))}, {run.get('items_done', 0)} processed, "
             f"{run.get('skipped', 0)} skipped (done before), {run.get('seconds', 0):.1f} s.")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>AffectLens batch summary</title>
<style>{_CSS}</style></head><body>
<h1>AffectLens batch summary</h1>
<p class="notice">{_e(RESPONSIBLE_USE)} Shares and engagement describe how faces <em>looked</em> to the model,
pooled over frames; they say nothing certain about what anyone felt.</p>
<p>{_e(facts)}</p>
<h2>Per source</h2>
<p class="legend">{legend}</p>
<p>Emotion shares: of all faces in all analysed frames of a source, the share whose top (smoothed) emotion is each
label. Engagement (0–1): for a video, its tracks' engagement (presence × frontal attention × expressiveness)
averaged by track lifespan; for a photo, the mean of attention × expressiveness over its faces.</p>
<table><tr><th>source</th><th>kind</th><th>subject</th><th>session</th><th>status</th><th>frames</th><th>faces</th>
<th>engagement</th><th>most frequent</th><th>emotion shares</th></tr>
{_source_rows(entries, labels, out_dir)}
</table>
{_subject_rows(summary.get("subjects") or [], labels)}
<h2>Items not fully analysed</h2>
<table><tr><th>path</th><th>status</th><th>attempts</th><th>error</th></tr>
{_failed_rows(entries)}
</table>
<p>AffectLens {_e(__version__)}. Per-face rows: <code>dataset/</code> (Parquet, one partition per source);
every item's state: <code>manifest.csv</code>.</p>
</body></html>
"""


def write_summary(out_dir: str | Path, entries: Sequence[dict], labels: Sequence[str], totals: dict) -> dict:
    """Write ``summary.json`` and ``summary.html`` atomically; returns the summary dict."""
    out = Path(out_dir)
    summary = batch_summary(entries, labels, totals)
    for name, text in (("summary.json", json.dumps(summary, indent=2, default=str) + "\n"),
                       ("summary.html", render_summary_html(entries, labels, summary, out))):
        tmp = out / f"{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)
    return summary
