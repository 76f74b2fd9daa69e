"""The model card of a site model, written from its record: what it was made from, on what, and how it did."""

from __future__ import annotations


def model_card(record: dict) -> str:
    site = record["site"]
    lines = [
        f"# {record['name']}",
        "",
        f"A site model of the **{record['task']}** task, fine-tuned on this site's corrected cases from "
        f"`{site['parent']['name']}` (sha256 `{site['parent']['sha256'][:16]}...`) on {site['created']}. "
        "SpineAI uses it only when it is chosen (`spineai segment --model` or the module's model selector).",
        "",
        f"Weights `{record['weights']}`, sha256 `{record['sha256']}` (checked before every load).",
        "",
        "## Cases",
        "",
        "| case | contrast | plane | first result edited | use |",
        "|---|---|---|---|---|",
        *(f"| {c['case_id']} | {c['contrast']} | {c['plane']} | {c['edited']} | {c['use']} |" for c in site["cases"]),
        "",
        "## Before and after",
        "",
        f"Dice of the network's output against the corrected masks, on {site['evaluated_on']}:",
        "",
        "| case | before | after |",
        "|---|---|---|",
        *(
            f"| {b['case_id']} ({b['contrast']}) | {b['dice']:.3f} | {a['dice']:.3f} |"
            for b, a in zip(site["before"]["site"], site["after"]["site"], strict=True)
        ),
        "",
        rehearsal_line(site) or "Rehearsal: painted targets in the bundled crops (no fixed score).",
        "",
        _mixing_line(site),
        "",
        "## Training",
        "",
        f"{site['steps']} steps in {site['seconds']} s on {site['device']} (budget {site['budget_minutes']} min); "
        f"recipe: {', '.join(f'{k} {v}' for k, v in site['recipe'].items())}.",
        "",
        "A figure on the cases trained on is a fit check, not an accuracy. One on the held-out top fifth of a "
        "case's slices is on slices next to those trained on, and it chose the mix of weights: optimistic. "
        "From three cases on, a fifth of the cases is held back automatically; trust the after column most then.",
        "",
    ]
    return "\n".join(lines)


def rehearsal_line(site: dict) -> str | None:
    """What the fine-tune did to what the model knew: the rehearsal set's median Dice before and
    after, and the crop (or phantom grade) that lost most. None when the rehearsal has no fixed score."""
    before, after = site["before"]["rehearsal_median_dice"], site["after"]["rehearsal_median_dice"]
    if before is None:
        return None
    line = f"What it knew: median Dice on the rehearsal set {before:.3f} -> {after:.3f}"
    by_item = site["before"].get("rehearsal_dice"), site["after"].get("rehearsal_dice")
    if None in by_item:  # records written before the per-crop figures
        return line + "."
    name = min(by_item[0], key=lambda item: by_item[1][item] - by_item[0][item])
    change = by_item[1][name] - by_item[0][name]
    if change >= 0:
        return line + "; no crop lost."
    return line + f"; the largest loss: {name} {by_item[0][name]:.3f} -> {by_item[1][name]:.3f}."


def _mixing_line(site: dict) -> str:
    mixing = site.get("mixing")
    if mixing is None:  # site models written before the mixing step
        return "Weights: as fine-tuned."
    share = mixing["share_of_fine_tuned_weights"]
    tried = ", ".join(f"{k} -> {v:.3f}" for k, v in mixing["site_dice_by_share"].items())
    if share == 0:
        return (
            "Weights: **the starting model's**: the fine-tune gained nothing on the site's cases "
            f"(site Dice by share of fine-tuned weights: {tried})."
        )
    return (
        f"Weights: {share:.0%} fine-tuned, {1 - share:.0%} the starting model's ({mixing['rule']}; "
        f"site Dice by share: {tried})."
    )
