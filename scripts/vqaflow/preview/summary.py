"""The preview's estimate in a few lines for the terminal."""

from __future__ import annotations


def _fmt(value, money: bool = False) -> str:
    if value is None:
        return "?"
    return f"${value:,.4f}" if money else f"{value:,.0f}"


def _span(interval: dict | None, money: bool = False) -> str:
    if not interval or interval.get("value") is None:
        return "not priced (set api.price_input_per_mtok and api.price_output_per_mtok)" if money else "?"
    bounds = ""
    if interval.get("low") is not None:
        bounds = f" [{_fmt(interval['low'], money)} - {_fmt(interval['high'], money)}]"
    return _fmt(interval["value"], money) + bounds


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def summary(found: dict, run: str, samples_path: str) -> str:
    """The estimate in a few lines for the terminal."""
    m, p = found["measured"], found["projected"]
    share = lambda s: "?" if s["value"] is None else f"{s['value']:.0%}"  # noqa: E731
    prompt, completion = m["prompt_tokens_per_record"], m["completion_tokens_per_record"]
    lines = [
        f"vqaflow preview of run {run!r}: {m['records']} of {p['records']:,} records, "
        f"{m['answered']} answered, {m['failed']} failed "
        f"({m['asked']} requests sent, {m['already_in_journal']} answers already in the journal)",
        f"  parse ok {share(m['parse_status']['ok'])}, partial {share(m['parse_status']['partial'])}, "
        f"none {share(m['parse_status']['none'])}; repaired {share(m['repaired'])}, "
        f"reformatted {share(m['reformatted'])}",
        f"  per record: {_fmt(prompt['mean'])} prompt + {_fmt(completion['mean'])} completion tokens, "
        f"{m['requests_per_record']['mean'] or 0:.2f} requests",
    ]
    if m["image_tokens_per_image"]["mean"] is not None:
        lines.append(f"  image tokens: {m['image_tokens_per_image']['mean']:,.0f} per image "
                     "(the rate limiter's estimate from now on)")
    if m["judge"] is not None:
        lines.append(f"  judge: {m['judge']['records']} records judged; full run "
                     f"{_span(p['judge_prompt_tokens'])} prompt + {_span(p['judge_completion_tokens'])} "
                     f"completion tokens, {_span(p['judge_cost_online'], True)} online")
    lines += [
        f"  full run ({found['confidence']:.0%} intervals): {_span(p['prompt_tokens'])} prompt tokens, "
        f"{_span(p['completion_tokens'])} completion tokens",
        f"  cost online {_span(p['cost_online'], True)}; batch {_span(p['cost_batch'], True)}",
    ]
    wall = p["wall_time_s"]
    if wall:
        bounds = f" [{_duration(wall['low'])} - {_duration(wall['high'])}]" if wall.get("low") is not None else ""
        lines.append(f"  generation wall time ~{_duration(wall['value'])}{bounds} ({found['wall_time']})")
    else:
        lines.append(f"  generation wall time: {found['wall_time']}")
    lines.append(f"  the preview's answers stay in the journal: the full run does not ask them again; "
                 f"look at them in {samples_path}")
    return "\n".join(lines)
