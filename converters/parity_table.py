"""The parity results as Markdown tables, for people: one row per encoder artifact (per text signature) with its
figures, bar and verdict, then one per zero-shot classifier. The exporter and `python -m converters.parity` print
them; parity_report.md holds them (converters.manifest.write_report).
"""


def format_table(results):
    lines = ["| artifact | length | cosine mean | cosine min | bar | max abs error | vs full length | "
             "zero-shot top-1 agreement | latency ms | |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.tower == "zero_shot":
            continue
        full = "" if r.full_length_max_abs_diff is None else (
            f"max diff {r.full_length_max_abs_diff:.1e}, cos {r.full_length_cosine_min:.9f}")
        lines.append(f"| {r.label} | {r.length or ''} | {r.cosine_mean:.6f} | {r.cosine_min:.6f} | {r.bar} | "
                     f"{r.max_abs_error:.2e} | {full} | {r.top1_agreement:.0%} ({r.examples}) | {r.latency_ms:.1f} | "
                     f"{'pass' if r.passed else 'FAIL: ' + r.shortfall()} |")
    zero_shot = [r for r in results if r.tower == "zero_shot"]
    if zero_shot:
        lines += ["", "| zero-shot classifier | classes | top-1 agreement | bar | max probability error | bar | "
                      "latency ms | |", "|---|---|---|---|---|---|---|---|"]
        for r in zero_shot:
            lines.append(f"| {r.path} | {r.classes} | {r.top1_agreement:.1%} ({r.examples}) | {r.bars[0]:.0%} | "
                         f"{r.max_prob_error:.2e} | {r.bars[1]} | {r.latency_ms:.1f} | "
                         f"{'pass' if r.passed else 'FAIL: ' + r.shortfall()} |")
    return "\n".join(lines)
