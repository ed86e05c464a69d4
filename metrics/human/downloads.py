"""Downloads of result tables and plots, as CSV or JSON.

A table downloads as its rows with raw values (numbers unformatted, undefined values empty in CSV and null
in JSON). A plot downloads as its plotly figure (JSON) or as the points it draws, one CSV line per point:
trace, x, y and, where the plot has interval bars, the interval's ends; a heatmap gives x, y and z.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.http import HttpResponse
from django.utils.text import slugify

FORMATS = ("csv", "json")


class DownloadError(ValueError):
    """An unknown download format; the message is for the person who asked."""


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DownloadError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def table_csv(table: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = table["columns"]
    writer.writerow([c["label"] for c in columns])
    for row in table["rows"]:
        writer.writerow(["" if row.get(c["key"]) is None else row.get(c["key"]) for c in columns])
    return out.getvalue()


def table_json(table: dict[str, Any]) -> str:
    return json.dumps(table, ensure_ascii=False, indent=1)


def plot_points(figure: dict[str, Any]) -> list[dict[str, Any]]:
    """The points a plotly figure draws, one dict per point."""
    points: list[dict[str, Any]] = []
    for number, trace in enumerate(figure["data"]):
        name = trace.get("name") or f"trace {number + 1}"
        if trace.get("type") == "heatmap":
            for row_label, values in zip(trace["y"], trace["z"], strict=True):
                for column_label, value in zip(trace["x"], values, strict=True):
                    points.append({"trace": name, "x": column_label, "y": row_label, "z": value})
            continue
        error = trace.get("error_y") or {}
        plus, minus = error.get("array"), error.get("arrayminus")
        for i, (x, y) in enumerate(zip(trace["x"], trace["y"], strict=True)):
            point: dict[str, Any] = {"trace": name, "x": x, "y": y}
            if plus is not None and minus is not None and y is not None:
                point["low"] = y - minus[i]
                point["high"] = y + plus[i]
            points.append(point)
    return points


def plot_csv(figure: dict[str, Any]) -> str:
    points = plot_points(figure)
    columns = list(dict.fromkeys(key for point in points for key in point)) or ["trace", "x", "y"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for point in points:
        writer.writerow(["" if point.get(c) is None else point.get(c) for c in columns])
    return out.getvalue()


def plot_json(figure: dict[str, Any]) -> str:
    return json.dumps(figure, ensure_ascii=False, indent=1)


def download_response(content: str, fmt: str, basename: str) -> HttpResponse:
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{slugify(basename) or "results"}.{fmt}"'
    return response


def table_download(table: dict[str, Any], fmt: str, basename: str) -> HttpResponse:
    content = table_csv(table) if check_format(fmt) == "csv" else table_json(table)
    return download_response(content, fmt, basename)


def plot_download(figure: dict[str, Any], fmt: str, basename: str) -> HttpResponse:
    content = plot_csv(figure) if check_format(fmt) == "csv" else plot_json(figure)
    return download_response(content, fmt, basename)
