"""Which label a voted text gets for training: the majority of its voters, within limits."""

from __future__ import annotations

from collections import Counter, defaultdict


def resolve_votes(
    votes: list[tuple[str, str, str, str]], max_per_user: int
) -> list[tuple[str, str]]:
    """Majority label per text from (text, label, platform, user) votes, newest first.

    Each user counts once per text and only with their newest `max_per_user` votes; texts with
    tied votes are dropped (people disagree: it teaches nothing). Sorted by text, so the same
    votes always give the same training data.
    """
    per_user: Counter[tuple[str, str]] = Counter()
    voted: set[tuple[str, str, str]] = set()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for text, label, platform, user_id in votes:
        voter = (platform, user_id)
        if per_user[voter] >= max_per_user or (platform, user_id, text) in voted:
            continue
        per_user[voter] += 1
        voted.add((platform, user_id, text))
        counts[text][label] += 1
    resolved: list[tuple[str, str]] = []
    for text, counter in sorted(counts.items()):
        (top, top_count), *rest = counter.most_common()
        if not rest or rest[0][1] < top_count:
            resolved.append((text, top))
    return resolved
