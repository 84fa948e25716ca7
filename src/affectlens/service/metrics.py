"""Prometheus metrics written by hand (text exposition format 0.0.4), no extra dependency.

Series:
    affectlens_http_requests_total{method,route,status}   counter
    affectlens_http_request_duration_seconds{route}      histogram
    affectlens_faces_analysed_total{endpoint}            counter (image, stream)
    affectlens_stream_frames_total                       counter
    affectlens_stream_connections                        gauge
    affectlens_jobs_queue_depth / affectlens_jobs_running gauges (read from the job store)
    affectlens_jobs_submitted_total                      counter

Routes are labelled by their template (``/v1/jobs/{job_id}``), never the raw path, and methods
outside :data:`METHODS` are counted as ``OTHER``, so label cardinality stays bounded.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from typing import Callable

#: HTTP methods labelled by name; any other method string is labelled ``OTHER``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kv) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kv.items()) + "}" if kv else ""


class Metrics:
    """Thread-safe counters, one latency histogram per route, and gauges read at scrape time.

    Args:
        gauges: name → (help text, callable returning the current value).
    """

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]] | None = None):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._hist: dict[str, list[int]] = {}
        self._hist_sum: dict[str, float] = defaultdict(float)
        self.faces: dict[str, int] = defaultdict(int)
        self.stream_frames = 0
        self.stream_connections = 0
        self.jobs_submitted = 0
        self.gauges = dict(gauges or {})

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        status = status if isinstance(status, int) and 100 <= status <= 599 else 0
        with self._lock:
            self.requests[(method, route, status)] += 1
            counts = self._hist.setdefault(route, [0] * (len(BUCKETS_S) + 1))
            counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
            self._hist_sum[route] += seconds

    def add_faces(self, endpoint: str, n: int) -> None:
        with self._lock:
            self.faces[endpoint] += n

    def add(self, name: str, delta: int = 1) -> None:
        """Change a plain counter or gauge attribute (``stream_frames``, ``stream_connections``, ...)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + delta)

    def render(self) -> str:
        """The whole exposition text."""
        out: list[str] = []
        with self._lock:
            out += ["# HELP affectlens_http_requests_total HTTP requests by method, route template and status.",
                    "# TYPE affectlens_http_requests_total counter"]
            for (m, r, s), n in sorted(self.requests.items()):
                out.append(f"affectlens_http_requests_total{_labels(method=m, route=r, status=s)} {n}")
            out += ["# HELP affectlens_http_request_duration_seconds Request latency by route template.",
                    "# TYPE affectlens_http_request_duration_seconds histogram"]
            for route, counts in sorted(self._hist.items()):
                cum = 0
                for le, c in zip(BUCKETS_S + (float("inf"),), counts):
                    cum += c
                    le_s = "+Inf" if le == float("inf") else repr(le)
                    out.append(f"affectlens_http_request_duration_seconds_bucket{_labels(route=route, le=le_s)} {cum}")
                out.append(f"affectlens_http_request_duration_seconds_sum{_labels(route=route)} "
                           f"{self._hist_sum[route]:.6f}")
                out.append(f"affectlens_http_request_duration_seconds_count{_labels(route=route)} {cum}")
            out += ["# HELP affectlens_faces_analysed_total Faces analysed, by endpoint.",
                    "# TYPE affectlens_faces_analysed_total counter"]
            for ep in sorted(set(self.faces) | {"image", "stream"}):
                out.append(f"affectlens_faces_analysed_total{_labels(endpoint=ep)} {self.faces.get(ep, 0)}")
            for name, kind, text, value in (
                    ("affectlens_stream_frames_total", "counter", "Frames analysed on WebSocket streams.",
                     self.stream_frames),
                    ("affectlens_stream_connections", "gauge", "Open WebSocket streams.", self.stream_connections),
                    ("affectlens_jobs_submitted_total", "counter", "Video jobs accepted.", self.jobs_submitted)):
                out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
            gauges = list(self.gauges.items())
        for name, (text, fn) in gauges:
            try:
                value = float(fn())
            except Exception:  # a gauge that cannot be read is left out, the scrape still works
                continue
            out += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(out) + "\n"
